"""``tacro-cds knowledge check [--site FILE]``."""

from __future__ import annotations

from service.cli.main import main


def test_check_prints_the_effective_tables(capsys):
    assert main(["knowledge", "check"]) == 0
    out = capsys.readouterr().out
    assert "Knowledge base valid" in out
    assert "ratio_cutoff.standard" in out and "10.3" in out and "11.8" in out
    assert "Dose bands (source: site)  [SITE DEFAULT: a clinician must confirm]" in out
    assert "Th1/Th2     13 < 15.8     -> 2 mg/day" in out
    assert "potassium.critical_at" in out and "6 mmol/L" in out
    assert "max_daily_mg" in out and "4 mg/d" in out


def test_site_file_changes_the_printed_cut_off(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text("protocol:\n  eligibility:\n    ratio_cutoff:\n      standard: {value: 12.5}\n")
    assert main(["knowledge", "check", "--site", str(site)]) == 0
    out = capsys.readouterr().out
    assert f"with site file {site}" in out
    line = next(row for row in out.splitlines() if "ratio_cutoff.standard" in row)
    assert "12.5" in line


def test_invalid_site_file_fails_with_the_loader_message(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text("protocol:\n  dose:\n    max_daily_mg: {value: -4}\n")
    assert main(["knowledge", "check", "--site", str(site)]) == 1
    err = capsys.readouterr().err
    assert "knowledge check FAILED" in err and "dose/max_daily_mg/value" in err


def test_unknown_source_id_fails(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text("protocol:\n  trough:\n    interval_days: {value: 7, source: my-clinic-sop}\n")
    assert main(["knowledge", "check", "--site", str(site)]) == 1
    assert "trough.interval_days: unknown source 'my-clinic-sop'" in capsys.readouterr().err
