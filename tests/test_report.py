"""experiments/report.py: the README table of a results JSON, with per-run provenance when runs differ in it."""
from .conftest import load_experiment_script

report = load_experiment_script("report")


def _run(label, top1, **provenance):
    layers = [{"layer": 1, "probe_top1": top1, "knn_top1": top1 - 10, "dead_units": 0, "weight_norm_mean": 2.5}]
    return {"label": label, "seed": 0, "layers": layers, "unsup_seconds": 100.0, "epochs": 1,
            "unsup_images_per_second": 500.0, "probe_seconds": 50.0, **provenance}


def _results(runs):
    return {"command": "liouna-snn run new.toml", "git_commit": "b" * 40, "torch": "2.x", "device": "cpu", "threads": 2,
            "train_images": 50000, "test_images": 10000, "runs": runs,
            "unsupervised": {"schedule": "greedy", "batch_size": 10, "precision": "fp32"}}


def test_one_invocation_names_its_command_commit_and_precision_in_the_header():
    text = report.table(_results([_run("a", 60.0), _run("b", 61.5)]), norms=True)
    header, _, columns, _, first, second = text.splitlines()
    assert header.startswith("`liouna-snn run new.toml` — commit `bbbbbbbbbb`") and header.endswith("batch 10, fp32")
    assert "precision" not in columns and columns.endswith("mean unit norm per layer |")
    assert first == "| a | 0 | 60.00 (50.00) | 100 | 500 | 500 | 50 | 0 | 2.50 |"
    assert second.startswith("| b | 0 | 61.50 (51.50) |")


def test_runs_of_several_invocations_show_each_runs_precision_and_commit():
    kept = _run("old", 60.0, command="liouna-snn run old.toml", git_commit="a" * 40, precision="bf16")
    text = report.table(_results([kept, _run("new", 61.0)]))
    lines = text.splitlines()
    assert lines[0].startswith("runs of several invocations") and "fp32" not in lines[0]
    assert lines[2].endswith("| precision | commit |")
    assert lines[4].endswith("| bf16 | `aaaaaaaaaa` |") and lines[5].endswith("| fp32 | `bbbbbbbbbb` |")
    assert lines[-1] == "Commands: `liouna-snn run new.toml`; `liouna-snn run old.toml`"


def test_runs_timed_on_several_cpus_name_their_cpu():
    old = _run("old", 60.0, cpu="x86_64")  # written before the CPU was named
    text = report.table(_results([old, _run("new", 61.0, cpu="AMD EPYC, avx512_bf16, 2 cores")]))
    lines = text.splitlines()
    assert lines[2].endswith("| dead units per layer | CPU |")
    assert lines[4].endswith("| not recorded |") and lines[5].endswith("| AMD EPYC, avx512_bf16, 2 cores |")
    same = report.table(_results([_run("a", 60.0, cpu="x86_64"), _run("b", 61.0)]))
    assert "CPU" not in same.splitlines()[2] and "cpu (2 threads)" in same.splitlines()[0]
    one = report.table(_results([_run("a", 60.0, cpu="AMD EPYC, avx2, 2 cores")]))
    assert "cpu (AMD EPYC, avx2, 2 cores, 2 threads)" in one.splitlines()[0]


def test_columns_follow_the_probed_depths_not_the_entry_count():
    """A run that probed only layer 2 fills the layer-2 column; a depth a run skipped shows '-'."""
    from liouna_snn.experiment import summary_table

    deep_only = _run("deep", 70.0)
    deep_only["layers"] = [{**deep_only["layers"][0], "layer": 2}]
    both = _run("both", 60.0)
    both["layers"].append({**both["layers"][0], "layer": 2, "probe_top1": 71.0, "knn_top1": 61.0})
    lines = report.table(_results([deep_only]), norms=True).splitlines()
    assert "| layer 2 probe (k-NN) | unsup." in lines[2] and "layer 1" not in lines[2]
    assert lines[4] == "| deep | 0 | 70.00 (60.00) | 100 | 500 | 500 | 50 | 0 | 2.50 |"
    lines = report.table(_results([deep_only, both]), norms=True).splitlines()
    assert "| layer 1 probe (k-NN) | layer 2 probe (k-NN) |" in lines[2]
    assert lines[4] == "| deep | 0 | - | 70.00 (60.00) | 100 | 500 | 500 | 50 | -/0 | -/2.50 |"
    assert lines[5].startswith("| both | 0 | 60.00 (50.00) | 71.00 (61.00) |")
    summary = summary_table(_results([deep_only, both])).splitlines()
    assert summary[0].startswith("| rule | seed | layer 1 probe / k-NN | layer 2 probe / k-NN |")
    assert summary[2].startswith("| deep | 0 | - | 70.00 / 60.00 |")


def test_geometry_adds_each_probed_layers_weights_and_spiking_firing_rates():
    spiking = _run("spk", 62.0)
    spiking["layers"][0].update(init_cosine_mean=0.8123, weight_effective_rank=42.44,
                                activity={"learning": {"firing_rate_mean": 0.1346}, "inference": {"firing_rate_mean": 0.2}})
    rate = _run("rate", 63.0)  # no activity, no geometry beyond the norm
    lines = report.table(_results([rate, spiking]), geometry=True).splitlines()
    assert lines[2].endswith("| dead units per layer | firing rate, learning / inference | mean unit norm | cosine to init "
                             "| effective rank |")
    assert lines[4].endswith("| 0 | - | 2.50 | - | - |")
    assert lines[5].endswith("| 0 | 0.135 / 0.200 | 2.50 | 0.812 | 42.4 |")
    # with --norms too the norm is shown once; several probed depths are named in the heading and split by "/"
    two = _run("two", 60.0)
    two["layers"].append({**two["layers"][0], "layer": 2, "weight_norm_mean": 4.0})
    lines = report.table(_results([two]), norms=True, geometry=True).splitlines()
    assert lines[2].count("norm") == 1 and "| mean unit norm per layer |" in lines[2]
    assert lines[4].endswith("| 0/0 | -/- | 2.50/4.00 | -/- | -/- |")


def test_several_seeds_get_mean_and_sample_std():
    runs = [{**_run("a", top1), "seed": seed} for seed, top1 in reversed(list(enumerate((60.0, 62.0, 64.0))))]
    runs.append(_run("b", 50.0))
    results = _results(runs)
    lines = report.seed_table(results).splitlines()
    assert lines[0] == "| rule | seeds | layer 1 probe (k-NN), mean ± std |"
    # seeds in order whatever order they ran in; b ran one seed: not in this table
    assert lines[2:] == ["| a | 0, 1, 2 | 62.00 ± 2.00 (52.00 ± 2.00) |"]
    assert report.seed_table(_results([_run("b", 50.0)])) is None


def test_seeds_of_different_precisions_are_never_averaged_together():
    """A bf16 seed 0 and an fp32 seed 1 of one label are two single-seed groups; two fp32 seeds are a row."""
    runs = [{**_run("a", 60.0), "precision": "bf16"}, {**_run("a", 70.0), "seed": 1, "precision": "fp32"}]
    assert report.seed_table(_results(runs)) is None
    runs.append({**_run("a", 72.0), "seed": 2})  # no precision of its own: the file's (fp32)
    lines = report.seed_table(_results(runs)).splitlines()
    assert lines[2:] == ["| a (fp32) | 1, 2 | 71.00 ± 1.41 (61.00 ± 1.41) |"]


def test_transfer_results_render_one_row_per_source_target_run_and_seed():
    layers = [{"layer": d, "probe_top1": 50.0 + d, "knn_top1": 40.0 + d} for d in (1, 2)]
    results = {"command": "liouna-snn transfer t.toml", "git_commit": "c" * 40, "torch": "2.x", "device": "cpu",
               "threads": 2, "image_size": 32, "unsupervised": {"schedule": "greedy", "batch_size": 10,
                                                                "precision": "fp32"},
               "runs": [{"label": "hybrid", "seed": 0, "source_dataset": "cifar10", "target_dataset": "imagenette",
                         "layers": layers, "unsup_seconds": 2450.4, "probe_seconds": 612.0, "precision": "fp32",
                         "reused_layers": {"layers": 3, "checkpoint": "cifar10_local_rules/hybrid_seed0.pt"}},
                        {"label": "random", "seed": 1, "source_dataset": "imagenette", "target_dataset": "cifar10",
                         "layers": layers[:1], "unsup_seconds": None, "probe_seconds": 30.0, "git_commit": "d" * 40}]}
    lines = report.transfer_markdown(results).splitlines()
    assert lines[0].startswith("`liouna-snn transfer t.toml`, torch 2.x, cpu (2 threads), 32 px")
    assert lines[2] == ("| source -> target | run | seed | layer 1 probe (k-NN) | layer 2 probe (k-NN) | pre-training (s) "
                        "| layers taken from | probe time (s) | precision | commit |")
    assert lines[4] == ("| cifar10 -> imagenette | hybrid | 0 | 51.00 (41.00) | 52.00 (42.00) | 2450 | "
                        "1-3: `cifar10_local_rules/hybrid_seed0.pt` | 612 | fp32 | `cccccccccc` |")
    assert lines[5] == "| imagenette -> cifar10 | random | 1 | 51.00 (41.00) | - | - | - | 30 | fp32 | `dddddddddd` |"
    # one seed per direction: nothing to average (the two directions are not seeds of one run)
    results["runs"][1] = {**results["runs"][1], "label": "hybrid", "seed": 0}
    assert report.seed_table(results) is None
    results["runs"].append({**results["runs"][0], "seed": 1})
    assert report.seed_table(results).splitlines()[2].startswith("| cifar10 -> imagenette: hybrid | 0, 1 |")


def test_a_missing_results_file_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nothing.json"
    assert report.main([str(missing)]) == 2
    assert f"report: {missing}: not a readable results JSON" in capsys.readouterr().err


def test_plot_redraws_the_layers_figure_beside_the_json_from_the_json(tmp_path, capsys):
    import json
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({**_results([_run("a", 60.0), _run("b", 61.5)]), "experiment": "exp"}))
    assert report.main([str(path)]) == 0
    assert not (tmp_path / "exp_layers.png").exists()  # drawing only on request
    assert report.main(["--plot", str(path)]) == 0
    figure = tmp_path / "exp_layers.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {figure}" in capsys.readouterr().out


def test_line_styles_stay_distinct_beyond_the_ten_default_colours():
    from liouna_snn.plots import line_style
    styles = [line_style(i) for i in range(40)]
    assert len({s["color"] for s in styles}) == 20
    assert len({(s["color"], s["marker"]) for s in (line_style(i) for i in range(180))}) == 180
