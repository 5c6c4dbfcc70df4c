"""``tacro-cds rxnorm import DIR``: a site's RxNorm release becomes a product table the service loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cards.knowledge import KnowledgeError, load_knowledge, load_knowledge_report
from cards.knowledge_model import typed
from cards.recognise import DrugRecogniser
from service.cli.main import main

SAMPLE = Path(__file__).parent / "data" / "rxnorm-sample"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rxnorm") / "products.json"
    assert main(["rxnorm", "import", str(SAMPLE), "--out", str(out)]) == 0
    return out


def rows(path: Path) -> dict[str, dict]:
    return {r["rxnorm"]: r for r in json.loads(path.read_text(encoding="utf-8"))["products"]}


EXPECTED = [  # (id, product rxcui, ingredients, strength_mg, dose form, release)
    ("clinical-drug", "90002", ["fluconazole"], 150.0, "Oral Tablet", "immediate"),
    ("branded-drug-through-its-generic", "90003", ["fluconazole"], 150.0, "Oral Tablet", "immediate"),
    ("extended-release-tablet", "90012", ["tacrolimus"], 0.75, "Extended Release Oral Tablet", "extended"),
    ("ointment-has-no-mg-strength", "90022", ["tacrolimus"], None, "Topical Ointment", None),
    (
        "two-ingredients-no-single-strength",
        "90033",
        ["sulfamethoxazole", "trimethoprim"],
        None,
        "Oral Tablet",
        "immediate",
    ),
    ("salt-through-precise-ingredient", "90053", ["diltiazem"], 120.0, "Extended Release Oral Capsule", "extended"),
    ("ingredient-known-by-name-only", "90073", ["aminoglycoside"], None, "Injectable Solution", None),
    ("pack-with-an-unknown-partner", "90086", ["ritonavir"], None, "Oral Tablet", "immediate"),
]


@pytest.mark.parametrize(
    "rxcui,ingredients,strength,form,release", [e[1:] for e in EXPECTED], ids=[e[0] for e in EXPECTED]
)
def test_products_of_known_drugs_are_written_with_ingredient_strength_and_form(
    table, rxcui, ingredients, strength, form, release
):
    row = rows(table)[rxcui]
    assert row["ingredients"] == ingredients
    assert row.get("strength_mg") == strength
    assert row.get("dose_form") == form
    assert row.get("release") == release
    assert row["source"].startswith("RxNorm release rxnorm-sample")


def test_unknown_drugs_obsolete_concepts_and_other_sources_are_left_out(table):
    written = rows(table)
    assert "90042" not in written  # acetaminophen: no rule needs it
    assert "90006" not in written  # obsolete (SUPPRESS = O)
    assert "90099" not in written  # not an RXNORM row
    assert "90082" in written and "90085" not in written  # ritonavir tablet kept, nirmatrelvir alone is not known


def test_the_service_recognises_an_imported_product_by_its_code(table):
    codes = typed(load_knowledge(products_table=table)).codes
    got = DrugRecogniser.from_codes(codes).recognise(["90002"], [])
    assert (got.ingredients, got.by, got.dose_form) == (("fluconazole",), "rxnorm-product", "Oral Tablet")
    assert got.product is not None and got.product.strength_mg == 150
    ointment = DrugRecogniser.from_codes(codes).recognise(["90022"], [])
    assert ointment.dose_form == "Topical Ointment"


def test_the_app_loads_the_table_named_in_its_configuration(table, tmp_path):
    from service import create_app

    app = create_app(
        {"RXNORM_PRODUCTS": str(table), "AUTH_REQUIRED": False, "FEEDBACK_DB": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )
    products = {p["rxnorm"] for p in app.extensions["tacro_cds"].knowledge["codes"]["products"]}
    assert {"90002", "90086"} <= products and "198377" in products


def test_the_cli_prints_the_counts_and_how_to_load_it(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["rxnorm", "import", str(SAMPLE / "rrf"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Wrote 9 products of 7 known drugs" in text
    assert f"TACRO_CDS_RXNORM_PRODUCTS={out}" in text


def test_a_site_drug_is_imported_too(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "codes:\n  drugs:\n    acetaminophen: {rxnorm: ['161'], names: [acetaminophen], source: site}\n",
        encoding="utf-8",
    )
    out = tmp_path / "p.json"
    assert main(["rxnorm", "import", str(SAMPLE), "--out", str(out), "--site", str(site)]) == 0
    assert rows(out)["90042"]["ingredients"] == ["acetaminophen"]


def test_a_folder_without_the_release_files_is_refused(tmp_path, capsys):
    assert main(["rxnorm", "import", str(tmp_path), "--out", str(tmp_path / "p.json")]) == 1
    assert "RXNCONSO.RRF and RXNREL.RRF are needed" in capsys.readouterr().err


def test_a_file_that_is_not_rrf_is_refused(tmp_path, capsys):
    shutil.copytree(SAMPLE / "rrf", tmp_path / "rrf")
    (tmp_path / "rrf" / "RXNREL.RRF").write_text("not,an,rrf,file\n", encoding="utf-8")
    assert main(["rxnorm", "import", str(tmp_path), "--out", str(tmp_path / "p.json")]) == 1
    assert "RXNREL.RRF line 1" in capsys.readouterr().err


def test_a_broken_product_table_stops_start_up(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(
        json.dumps({"products": [{"rxnorm": "x1", "ingredients": ["fluconazole"], "display": "d", "source": "s"}]}),
        encoding="utf-8",
    )
    with pytest.raises(KnowledgeError, match=r"products/\d+ \(rxnorm x1\)/rxnorm"):
        load_knowledge_report(products_table=bad)
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="no `products` list"):
        load_knowledge_report(products_table=bad)
