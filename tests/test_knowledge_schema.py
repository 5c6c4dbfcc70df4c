"""The published JSON Schemas are generated from the knowledge models, and agree with them."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from cards.knowledge import KnowledgeError, load_knowledge, load_knowledge_report
from cards.knowledge_model import KnowledgeBase, KnowledgeTables, typed
from cards.knowledge_schema import main, schema_text, stale


def test_checked_in_schemas_are_the_generated_ones():
    assert stale() == [], "run: python -m cards.knowledge_schema --write"


def test_the_check_command_fails_on_a_hand_edited_schema(tmp_path, monkeypatch, capsys):
    for name in ("care", "codes", "interactions", "protocol"):
        (tmp_path / f"{name}.schema.json").write_text(schema_text(name), encoding="utf-8")
    assert stale(tmp_path) == []
    (tmp_path / "protocol.schema.json").write_text(
        schema_text("protocol").replace('"minLength": 1', '"minLength": 0', 1)
    )
    assert stale(tmp_path) == ["protocol.schema.json"]
    monkeypatch.setattr("cards.knowledge_schema.FOLDER", tmp_path)
    assert main(["--check"]) == 1
    assert "protocol.schema.json differs from its model" in capsys.readouterr().out


def test_an_optional_key_may_be_left_out_but_not_set_to_null(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("protocol:\n  trough:\n    target_low: {value: 4, source: guideline, section: null}\n")
    with pytest.raises(KnowledgeError, match=r"entry trough/target_low/section: None is not of type 'string'"):
        load_knowledge(site)


def test_the_loader_builds_the_model_once():
    loaded = load_knowledge_report()
    assert isinstance(loaded.tables, KnowledgeTables)
    assert typed(loaded.tables) is typed(loaded.tables)
    assert typed(loaded.tables).protocol.trough.target_low.value == 4


def test_a_site_value_reaches_the_model(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("protocol:\n  trough:\n    target_low: {value: 5}\n")
    model = typed(load_knowledge(site))
    assert model.protocol.trough.target_low.value == 5
    assert model.protocol.trough.target_low.source != "guideline"  # a site value cites the site file


def test_a_modified_copy_builds_its_own_model():
    kb = copy.deepcopy(load_knowledge())
    kb["protocol"]["dose"]["bands"]["site_default"] = False
    assert typed(kb).protocol.dose.bands.site_default is False
    assert typed(load_knowledge()).protocol.dose.bands.site_default is True


def test_a_model_error_is_one_line_naming_the_entry():
    from cards.knowledge import _typed

    tables = copy.deepcopy(dict(load_knowledge()))
    tables["interactions"]["entries"][0]["drugs"] = ["fluconazole", "fluconazole"]
    ident = tables["interactions"]["entries"][0]["id"]
    with pytest.raises(KnowledgeError) as caught:
        _typed(tables, "site.yaml")
    message = str(caught.value)
    assert message.startswith(f"interactions (with site file site.yaml): entry entries/0 (id {ident})/drugs: ")
    assert "listed twice" in message and "\n" not in message


def test_models_refuse_unknown_keys():
    tables = dict(load_knowledge())
    tables["protocol"] = {**tables["protocol"], "extra": 1}
    with pytest.raises(ValidationError) as caught:
        KnowledgeBase.model_validate(tables)
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("protocol", "extra"), "extra_forbidden")]


def test_a_bad_site_threshold_is_one_line_naming_the_file_and_the_entry(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("protocol:\n  safety:\n    potassium:\n      warning_at: {value: high}\n")
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(site)
    message = str(caught.value)
    assert (
        message
        == f"protocol (with site file {site}): entry safety/potassium/warning_at/value: 'high' is not of type 'number'"
    )
