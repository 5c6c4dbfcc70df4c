"""The knowledge loader: site files merge entry by entry, never drop a critical entry silently, cite
themselves for the values they set, and say what is still unconfirmed."""

from __future__ import annotations

import json

import pytest
import yaml

from cards.knowledge import (
    KnowledgeError,
    diff,
    dose_confirmation,
    load_knowledge,
    load_knowledge_report,
    shipped_tables,
    unconfirmed_entries,
)
from service.cli.main import main

SHIPPED = load_knowledge()
NEW_ENTRY = (
    "{id: site-everolimus, drugs: [sirolimus], class: inhibitor, effect_direction: raises-levels,"
    " severity: warning, summary: s, effect: e, handling: h, sources: ['site formulary']}"
)


def site_file(tmp_path, text: str):
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def ids(tables) -> list[str]:
    return [e["id"] for e in tables["interactions"]["entries"]]


# --- keyed lists: add, override, remove one entry -------------------------------------------------


def test_a_site_adding_one_interaction_keeps_every_shipped_one(tmp_path):
    site = site_file(tmp_path, f"interactions:\n  entries:\n    - {NEW_ENTRY}\n")
    tables = load_knowledge(site)
    assert ids(tables) == ids(SHIPPED) + ["site-everolimus"]
    assert "mycophenolate" in ids(tables)


def test_a_site_overrides_one_field_of_one_entry(tmp_path):
    site = site_file(tmp_path, "interactions:\n  entries:\n    - {id: inhibitor-amiodarone, severity: info}\n")
    tables = load_knowledge(site)
    entry = next(e for e in tables["interactions"]["entries"] if e["id"] == "inhibitor-amiodarone")
    shipped = next(e for e in SHIPPED["interactions"]["entries"] if e["id"] == "inhibitor-amiodarone")
    assert entry["severity"] == "info"
    assert entry["drugs"] == shipped["drugs"] and entry["summary"] == shipped["summary"]
    assert ids(tables) == ids(SHIPPED)


def test_a_site_removes_one_non_critical_entry_explicitly(tmp_path):
    site = site_file(tmp_path, "interactions:\n  entries:\n    - {id: macrolide-azithromycin, remove: true}\n")
    tables = load_knowledge(site)
    assert ids(tables) == [i for i in ids(SHIPPED) if i != "macrolide-azithromycin"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("- {id: mycophenolate, remove: true}", "removes this critical entry"),
        ("- {id: mycophenolate, severity: warning}", "downgrades this critical entry to warning"),
        ("- {id: mycophenolate, drugs: [mycophenolic_acid]}", "drops mycophenolate_mofetil from this critical entry"),
    ],
    ids=["remove", "downgrade", "narrow"],
)
def test_a_critical_entry_is_not_dropped_or_weakened_silently(tmp_path, text, message):
    site = site_file(tmp_path, "interactions:\n  entries:\n    " + text + "\n")
    with pytest.raises(KnowledgeError, match=rf"entries\[mycophenolate\]: the site {message}\. Refused"):
        load_knowledge(site)


def test_a_critical_entry_is_removed_when_the_site_says_why(tmp_path, capsys):
    site = site_file(
        tmp_path,
        "interactions:\n  entries:\n    - {id: mycophenolate, remove: true,"
        " acknowledge_critical: 'our own mycophenolate alert covers it'}\n",
    )
    loaded = load_knowledge_report(site)
    assert "mycophenolate" not in ids(loaded.tables)
    assert loaded.critical_overrides == (
        "interactions.entries[mycophenolate]: the site removes this critical entry, because: our own "
        "mycophenolate alert covers it",
    )
    assert main(["knowledge", "check", "--site", str(site)]) == 0
    out = capsys.readouterr().out
    assert "Critical entries the site removed or weakened (with its reason)" in out
    assert "because: our own mycophenolate alert covers it" in out


@pytest.mark.parametrize(
    "text,message",
    [
        ("interactions:\n  entries:\n    - {drugs: [sirolimus], severity: info}\n", r"entries\[0\] has no id"),
        (
            "interactions:\n  entries:\n    - {id: no-such-entry, remove: true}\n",
            r"\[no-such-entry\]: `remove` names no",
        ),
    ],
    ids=["no-id", "remove-unknown"],
)
def test_keyed_entries_must_be_identifiable(tmp_path, text, message):
    with pytest.raises(KnowledgeError, match=message):
        load_knowledge(site_file(tmp_path, text))


def test_a_site_adds_a_lab_code_without_losing_the_shipped_codes(tmp_path):
    site = site_file(
        tmp_path,
        "codes:\n  observations:\n    creatinine:\n      codes:\n        - {system: 'urn:site:lab', code: 'CREA'}\n",
    )
    codes = load_knowledge(site)["codes"]["observations"]["creatinine"]["codes"]
    assert [c["code"] for c in codes] == ["2160-0", "38483-4", "14682-9", "CREA"]


def test_care_cards_merge_by_id(tmp_path):
    site = site_file(tmp_path, "care:\n  cards:\n    - {id: administration, hooks: [order-select, order-sign]}\n")
    cards = load_knowledge(site)["care"]["cards"]
    assert [c["id"] for c in cards] == [c["id"] for c in SHIPPED["care"]["cards"]]
    assert next(c for c in cards if c["id"] == "administration")["hooks"] == ["order-select", "order-sign"]


def test_unkeyed_lists_still_replace(tmp_path):
    site = site_file(tmp_path, "codes:\n  drugs:\n    fluconazole: {names: [fluconazole]}\n")
    assert load_knowledge(site)["codes"]["drugs"]["fluconazole"]["names"] == ["fluconazole"]


def test_a_schema_error_in_a_keyed_entry_names_the_entry(tmp_path):
    site = site_file(
        tmp_path,
        "codes:\n  products: [{rxnorm: '1', ingredients: [tacrolimus], release: slow, display: x, source: y}]\n",
    )
    with pytest.raises(KnowledgeError, match=r"entry products/\d+ \(rxnorm 1\)/release"):
        load_knowledge(site)


# --- a value set by the site cites the site file --------------------------------------------------


def test_a_site_value_cites_the_site_file_not_the_paper(tmp_path):
    site = site_file(tmp_path, "protocol:\n  eligibility:\n    ratio_cutoff:\n      standard: {value: 10.5}\n")
    protocol = load_knowledge(site)["protocol"]
    cutoff = protocol["eligibility"]["ratio_cutoff"]["standard"]
    assert cutoff["value"] == 10.5 and cutoff["source"] == "site-file" and "section" not in cutoff
    assert protocol["sources"]["site-file"]["label"] == "Site configuration (site.yaml)"
    # untouched entries keep their paper
    assert protocol["eligibility"]["ratio_cutoff"]["euploid_blastocyst"]["source"] == "rmb-2024"


def test_confirming_an_entry_keeps_its_citation(tmp_path):
    site = site_file(tmp_path, "protocol:\n  dose:\n    th1_high_addon:\n      th1_pct_min: {site_default: false}\n")
    assert load_knowledge(site)["protocol"]["dose"]["th1_high_addon"]["th1_pct_min"]["source"] == "nakagawa-2017"


def test_a_site_that_names_its_own_source_keeps_it(tmp_path):
    site = site_file(
        tmp_path,
        "protocol:\n  sources:\n    clinic-sop: {label: 'Clinic SOP 4', citation: 'SOP 4'}\n"
        "  trough:\n    interval_days: {value: 7, source: clinic-sop}\n",
    )
    assert load_knowledge(site)["protocol"]["trough"]["interval_days"]["source"] == "clinic-sop"


def test_a_changed_interaction_and_code_entry_cite_the_site(tmp_path):
    site = site_file(
        tmp_path,
        "interactions:\n  entries:\n    - {id: inhibitor-amiodarone, severity: info}\n"
        "codes:\n  drugs:\n    fluconazole: {names: [fluconazole, flucon]}\n",
    )
    tables = load_knowledge(site)
    entry = next(e for e in tables["interactions"]["entries"] if e["id"] == "inhibitor-amiodarone")
    assert entry["sources"] == ["Site file site.yaml (sets severity)"]
    assert tables["codes"]["drugs"]["fluconazole"]["source"] == "site file site.yaml"


# --- warnings, unconfirmed entries, differences ---------------------------------------------------


def test_a_cut_off_above_the_first_band_is_flagged(tmp_path):
    site = site_file(tmp_path, "protocol:\n  eligibility:\n    ratio_cutoff:\n      standard: {value: 10.5}\n")
    [warning] = load_knowledge_report(site).warnings
    assert "cut-off (10.5) is above the start of the first dose band (10.3)" in warning
    assert load_knowledge_report().warnings == ()


def test_the_dose_card_needs_both_bands_and_trigger_confirmed(tmp_path):
    assert dose_confirmation(SHIPPED["protocol"]).pending == ("dose.bands", "dose.th1_high_addon.th1_pct_min")
    bands_only = load_knowledge(site_file(tmp_path, "protocol:\n  dose:\n    bands: {site_default: false}\n"))
    assert dose_confirmation(bands_only["protocol"]).pending == ("dose.th1_high_addon.th1_pct_min",)
    both = load_knowledge(
        site_file(
            tmp_path,
            "protocol:\n  dose:\n    bands: {site_default: false}\n"
            "    th1_high_addon:\n      th1_pct_min: {site_default: false}\n",
        )
    )
    assert dose_confirmation(both["protocol"]).confirmed
    assert "protocol: dose.bands" not in unconfirmed_entries(both)
    assert "protocol: dose.bands" in unconfirmed_entries(SHIPPED)


def test_the_difference_from_the_shipped_knowledge_names_each_change(tmp_path):
    site = site_file(
        tmp_path,
        f"interactions:\n  entries:\n    - {NEW_ENTRY}\n"
        "    - {id: macrolide-azithromycin, remove: true}\n"
        "protocol:\n  dose:\n    max_daily_mg: {value: 3}\n",
    )
    changes = [str(c) for c in load_knowledge_report(site).changes]
    assert "+ interactions.entries[site-everolimus]: added" in changes
    assert "- interactions.entries[macrolide-azithromycin]: removed" in changes
    assert "~ protocol.dose.max_daily_mg.value: 4 -> 3" in changes
    assert len(changes) == 3  # the new citation follows from the value: not listed as a change of its own
    assert diff(shipped_tables(), shipped_tables()) == []


# --- the CLI prints all of it and refuses what the loader refuses ----------------------------------


def test_knowledge_check_prints_the_difference_and_what_is_unconfirmed(tmp_path, capsys):
    site = site_file(
        tmp_path,
        f"interactions:\n  entries:\n    - {NEW_ENTRY}\nprotocol:\n  dose:\n    bands: {{site_default: false}}\n",
    )
    assert main(["knowledge", "check", "--site", str(site)]) == 0
    out = capsys.readouterr().out
    shipped = len(SHIPPED["interactions"]["entries"])
    assert f"entries: {shipped + 1}" in out
    assert "Changes from the shipped knowledge (2)" in out
    assert "+ interactions.entries[site-everolimus]: added" in out
    assert "~ protocol.dose.bands.site_default: true -> false" in out
    assert "Dose card: UNCONFIRMED until the site confirms dose.th1_high_addon.th1_pct_min" in out


def test_knowledge_check_refuses_to_drop_a_critical_entry(tmp_path, capsys):
    site = site_file(tmp_path, "interactions:\n  entries:\n    - {id: mycophenolate, remove: true}\n")
    assert main(["knowledge", "check", "--site", str(site)]) == 1
    err = capsys.readouterr().err
    assert "knowledge check FAILED" in err and "acknowledge_critical" in err


def test_knowledge_check_prints_the_cut_off_warning(tmp_path, capsys):
    site = site_file(tmp_path, "protocol:\n  eligibility:\n    ratio_cutoff:\n      standard: {value: 10.5}\n")
    assert main(["knowledge", "check", "--site", str(site)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: The Th1/Th2 cut-off (10.5) is above" in out


# --- start-up runs the same checks -----------------------------------------------------------------


def _app(tmp_path, site):
    from service import create_app

    return create_app(
        {"SITE_CONFIG": str(site), "AUTH_REQUIRED": False, "FEEDBACK_DB": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )


def test_start_up_refuses_an_unknown_source_id(tmp_path):
    site = site_file(tmp_path, "protocol:\n  trough:\n    interval_days: {value: 7, source: my-clinic-sop}\n")
    with pytest.raises(KnowledgeError, match="trough.interval_days: unknown source 'my-clinic-sop'"):
        _app(tmp_path, site)


def test_start_up_refuses_a_silently_dropped_critical_entry(tmp_path):
    site = site_file(tmp_path, "interactions:\n  entries:\n    - {id: mycophenolate, remove: true}\n")
    with pytest.raises(KnowledgeError, match="removes this critical entry"):
        _app(tmp_path, site)


def test_start_up_logs_the_warnings_and_what_is_unconfirmed(tmp_path, caplog):
    site = site_file(tmp_path, "protocol:\n  eligibility:\n    ratio_cutoff:\n      standard: {value: 10.5}\n")
    with caplog.at_level("WARNING"):
        _app(tmp_path, site)
    text = caplog.text
    assert "cut-off (10.5) is above the start of the first dose band" in text
    assert "dose card unconfirmed" in text


def test_an_imported_product_table_adds_products_but_never_overrides_a_reviewed_one(tmp_path):
    table = tmp_path / "products.json"
    table.write_text(
        json.dumps(
            {
                "products": [
                    {
                        "rxnorm": "999001",
                        "ingredients": ["fluconazole"],
                        "strength_mg": 150,
                        "dose_form": "Oral Tablet",
                        "display": "fluconazole 150 MG Oral Tablet",
                        "source": "RxNorm import",
                    },
                    {
                        "rxnorm": "198377",
                        "ingredients": ["tacrolimus"],
                        "strength_mg": 5,
                        "display": "wrong",
                        "source": "RxNorm import",
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    loaded = load_knowledge_report(products_table=table)
    products = {p["rxnorm"]: p for p in loaded.tables["codes"]["products"]}
    assert loaded.products_imported == 1
    assert products["999001"]["ingredients"] == ["fluconazole"]
    assert products["198377"]["strength_mg"] == 1


def test_the_shipped_files_parse_as_yaml_mappings():
    for name, table in shipped_tables().items():
        assert isinstance(table, dict), name
        yaml.safe_dump(table)


# --- through the HTTP API: a site adding one interaction keeps the critical mycophenolate card ------


def test_a_site_adding_an_interaction_still_gets_the_critical_mycophenolate_card(make_app, tmp_path):
    from conftest import no_data_prefetch

    site = site_file(tmp_path, f"interactions:\n  entries:\n    - {NEW_ENTRY}\n")
    client = make_app(SITE_CONFIG=str(site)).test_client()
    rx = "http://www.nlm.nih.gov/research/umls/rxnorm"
    tacrolimus = {
        "resourceType": "MedicationRequest",
        "id": "tac",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-10-01",
        "medicationCodeableConcept": {"coding": [{"system": rx, "code": "198377"}]},
    }
    draft = {
        "resourceType": "MedicationRequest",
        "id": "mmf",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": rx, "code": "68149"}], "text": "CellCept 500 mg"},
    }
    prefetch = no_data_prefetch()
    prefetch["medicationRequests"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": tacrolimus}],
    }
    rif = {
        "resourceType": "Condition",
        "id": "rif",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {
            "coding": [
                {"system": "http://example.org/fhir/CodeSystem/tacro-cds", "code": "recurrent-implantation-failure"}
            ]
        },
    }
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": rif}]}
    body = {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/u1",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
        },
        "prefetch": prefetch,
    }
    response = client.post("/cds-services/tacrolimus-order-sign", json=body)
    assert response.status_code == 200
    critical = [c for c in response.get_json()["cards"] if c["indicator"] == "critical"]
    assert any("mycophenolate" in (c["summary"] + c.get("detail", "")).lower() for c in critical), critical


def test_a_coding_list_not_named_in_the_table_merges_by_system_and_code():
    from cards.knowledge import list_key

    codings = [{"system": "http://hl7.org/fhir/sid/cvx", "code": "03"}]
    assert list_key(("codes", "a_new_section", "codes"), codings) == ("system", "code")
    assert list_key(("codes", "drugs", "fluconazole", "names"), ["fluconazole"]) is None
