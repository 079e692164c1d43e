"""`flowlik inspect`: the contract with each field's origin, and the smoke run."""
import json

from conftest import run_flowlik


def test_reports_the_embedded_contract_and_a_smoke_run(fixtures):
    proc = run_flowlik("inspect", fixtures / "vp_noise_embedded.pt", "--json")
    r = json.loads(proc.stdout)
    c = r["contract"]
    assert c["parameterization"] == "noise" and c["time"] == "diffusion"
    assert c["sources"]["parameterization"] == "manifest (embedded)"
    assert c["sources"]["signature"] == "default"
    assert c["flow_time_integrated"] == [0.999, 0.0]
    assert r["smoke"]["output_shape"] == [4, 2] and r["smoke"]["finite"] is True
    assert r["smoke"]["one_sample"]["status"] == "ok" and r["smoke"]["one_sample"]["nfe"] > 0


def test_options_override_and_are_named_as_the_source(fixtures):
    proc = run_flowlik("inspect", fixtures / "vp_noise_embedded.pt", "--json", "--time-range", "0.01,1")
    c = json.loads(proc.stdout)["contract"]
    assert c["time_range"] == [0.01, 1.0]
    assert c["sources"]["time_range"] == "option --time-range"


def test_text_output_lists_every_field_with_its_source(fixtures):
    out = run_flowlik("inspect", fixtures / "vp_noise_embedded.pt").stdout
    assert "parameterization" in out and "[manifest (embedded)]" in out and "NFE" in out


def test_a_model_without_a_shape_needs_one(fixtures):
    proc = run_flowlik("inspect", fixtures / "gaussian.pt", check=False)
    assert proc.returncode == 2 and "--shape" in proc.stderr
    ok = run_flowlik("inspect", fixtures / "gaussian.pt", "--shape", "2,3", "--json")
    assert json.loads(ok.stdout)["smoke"]["output_shape"] == [4, 6]
