"""Unit conversion to canonical units (docs/data-profile.md "Observations"; docs/clinical-basis.md "Units")."""

from __future__ import annotations

import pytest

from cards.knowledge import load_knowledge
from cards.units import CANONICAL, normalise_unit, to_canonical

# concept, value, UCUM code, unit text, expected canonical value
CONVERSIONS = [
    ("creatinine-mg/dL", "creatinine", 0.8, "mg/dL", None, 0.8),
    ("creatinine-mg/dl-text", "creatinine", 0.8, None, "mg/dl", 0.8),
    ("creatinine-umol/L", "creatinine", 88.4, "umol/L", None, 1.0),
    ("creatinine-µmol/L-micro-sign", "creatinine", 106.08, None, "\u00b5mol/L", 1.2),
    ("creatinine-μmol/L-greek-mu", "creatinine", 97.24, None, "\u03bcmol/L", 1.1),
    ("glucose-mg/dL", "glucose", 92, "mg/dL", None, 92.0),
    ("glucose-mmol/L", "glucose", 5.1, "mmol/L", None, 92.0),  # 91.88 reported as 92: the IADPSG 5.1 mmol/L = 92 mg/dL
    ("glucose-mmol/l-text", "glucose", 7.0, None, "mmol/l", 126.0),
    ("tacrolimus-ng/mL", "tacrolimus", 6.5, "ng/mL", None, 6.5),
    ("tacrolimus-ug/L", "tacrolimus", 6.5, "ug/L", None, 6.5),
    ("tacrolimus-µg/L", "tacrolimus", 6.5, None, "\u00b5g/L", 6.5),
    ("tacrolimus-mcg/L", "tacrolimus", 6.5, None, "mcg/L", 6.5),
    ("potassium-mmol/L", "potassium", 5.5, "mmol/L", None, 5.5),
    ("potassium-mEq/L", "potassium", 5.5, "mEq/L", None, 5.5),
    ("potassium-meq/l", "potassium", 5.5, None, "meq/l", 5.5),
    ("hba1c-%", "hba1c", 6.5, "%", None, 6.5),
    ("hba1c-mmol/mol-IFCC-master-equation", "hba1c", 48, "mmol/mol", None, 6.54304),
    ("ratio-{ratio}", "th1_th2_ratio", 10.3, "{ratio}", None, 10.3),
    ("ratio-text-ratio", "th1_th2_ratio", 10.3, None, "ratio", 10.3),
    ("ratio-1", "th1_th2_ratio", 10.3, "1", None, 10.3),
    ("ratio-no-unit-dimensionless", "th1_th2_ratio", 11.8, None, None, 11.8),
    ("th1-%", "th1_pct", 28.8, "%", None, 28.8),
    ("alt-U/L", "alt", 40, "U/L", None, 40.0),
    ("alt-IU/L", "alt", 40, None, "IU/L", 40.0),
    ("ast-ukat/L", "ast", 0.5, "ukat/L", None, 30.0),
    ("bilirubin-umol/L", "bilirubin", 17.1, "umol/L", None, 1.0),
    ("bp-mm[Hg]", "blood_pressure", 140, "mm[Hg]", None, 140.0),
    ("bp-mmHg", "blood_pressure", 90, None, "mmHg", 90.0),
    ("nk-/uL", "nk_cells", 250, "/uL", None, 250.0),
    ("nk-10*3/uL", "nk_cells", 0.25, "10*3/uL", None, 250.0),
    ("wbc-10*3/uL", "wbc", 6.1, "10*3/uL", None, 6.1),
    ("wbc-10^9/L", "wbc", 6.1, None, "10^9/L", 6.1),
    ("platelets-/uL", "platelets", 250000, "/uL", None, 250.0),
    ("hemoglobin-g/dL", "hemoglobin", 12.5, "g/dL", None, 12.5),
    ("hemoglobin-g/L", "hemoglobin", 125, "g/L", None, 12.5),
    ("hcg-[IU]/L", "hcg", 25, "[IU]/L", None, 25.0),
    ("hcg-IU/L", "hcg", 25, None, "IU/L", 25.0),
    ("hcg-mIU/mL", "hcg", 25, None, "mIU/mL", 25.0),
    ("dose-mg", "dose", 1, "mg", None, 1.0),
    ("dose-ug", "dose", 500, "ug", None, 0.5),
    ("dose-g", "dose", 1, "g", None, 1000.0),
    ("code-wins-over-text", "creatinine", 88.4, "umol/L", "mg/dL", 1.0),
    ("unknown-code-falls-back-to-text", "creatinine", 0.9, "mg%", "mg/dL", 0.9),
]


@pytest.mark.parametrize(
    "concept,value,code,text,expected", [c[1:] for c in CONVERSIONS], ids=[c[0] for c in CONVERSIONS]
)
def test_converts_to_the_canonical_unit(concept, value, code, text, expected):
    converted = to_canonical(concept, value, code, text)
    assert converted.problem is None
    assert converted.value == pytest.approx(expected, abs=1e-6)
    assert converted.unit == CANONICAL[concept]


# A value in a unit that cannot be converted is unusable, with the reason kept.
UNUSABLE = [
    ("creatinine-in-mg/L-unknown", "creatinine", 8, "mg/L", None, "unit mg/L cannot be converted to mg/dL"),
    ("glucose-in-%", "glucose", 5, "%", None, "cannot be converted to mg/dL"),
    ("tacrolimus-in-nmol/L", "tacrolimus", 7, "nmol/L", None, "cannot be converted to ng/mL"),
    ("ratio-as-%", "th1_th2_ratio", 12, "%", None, "cannot be converted to {ratio}"),
    ("th1-without-unit", "th1_pct", 25, None, None, "no unit given; expected %"),
    ("creatinine-without-unit", "creatinine", 0.8, None, None, "no unit given"),
    ("bp-in-kPa", "blood_pressure", 18, "kPa", None, "unit kPa cannot be converted to mm[Hg]"),
    ("hemoglobin-mmol/L-not-converted", "hemoglobin", 7.8, "mmol/L", None, "cannot be converted to g/dL"),
    ("no-value", "creatinine", None, "mg/dL", None, "no value"),
    ("concept-without-table", "cbc_panel", 1, "1", None, "no unit conversion is defined for cbc_panel"),
    ("blank-unit-strings", "potassium", 4.0, " ", "", "no unit given"),
]


@pytest.mark.parametrize("concept,value,code,text,reason", [u[1:] for u in UNUSABLE], ids=[u[0] for u in UNUSABLE])
def test_unconvertible_value_is_unusable_with_reason(concept, value, code, text, reason):
    converted = to_canonical(concept, value, code, text)
    assert converted.value is None
    assert reason in (converted.problem or "")


@pytest.mark.parametrize(
    "spelling,ucum",
    [
        ("mg/dl", "mg/dL"),
        ("MG/DL", "mg/dL"),
        ("umol/l", "umol/L"),
        ("\u00b5mol/L", "umol/L"),
        ("\u03bcmol/L", "umol/L"),
        ("mEq/L", "meq/L"),
        ("mcg/L", "ug/L"),
        ("mm Hg", "mm[Hg]"),
        ("10*3/uL", "10*3/uL"),
        ("x10^3/uL", "10*3/uL"),
        (" % ", "%"),
        ("furlongs", None),
        (None, None),
    ],
)
def test_common_spellings_normalise_to_ucum(spelling, ucum):
    assert normalise_unit(spelling) == ucum


def test_codes_yaml_canonical_units_match_the_conversion_table():
    """codes.yaml shows reviewers the canonical units; units.py converts to them: they must agree."""
    observations = load_knowledge()["codes"]["observations"]
    for concept, entry in observations.items():
        assert entry["canonical_unit"] == CANONICAL.get(concept), concept
