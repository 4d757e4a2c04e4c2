"""Settings: the thread count per worker, and that the model registry applies it."""
from conftest import needs_classifier, needs_cutout

from app import create_app
from app.config import cutout_threads, torch_threads
from app.serving import registry


def test_thread_count_is_the_setting_or_cores_shared_among_workers():
    cores = len(__import__("os").sched_getaffinity(0))
    assert torch_threads({"TORCH_THREADS": 3}) == 3
    assert torch_threads({"TORCH_THREADS": None, "WORKERS": 1}) == cores
    assert torch_threads({"TORCH_THREADS": None, "WORKERS": 10_000}) == 1  # never zero
    assert torch_threads({"TORCH_THREADS": 0, "WORKERS": 2}) == max(1, cores // 2)


@needs_classifier
def test_loading_the_classifier_gives_its_onnx_session_the_thread_setting(tmp_path):
    for threads in (1, 2):
        app = create_app({"TESTING": True, "TORCH_THREADS": threads, "REPORT_DIR": str(tmp_path)})
        with app.app_context():
            session = registry.get_model("classifier").backbone.session
        assert session.get_session_options().intra_op_num_threads == threads


def test_a_cutout_gets_every_core_unless_set():
    cores = len(__import__("os").sched_getaffinity(0))
    assert cutout_threads({"CUTOUT_THREADS": None, "WORKERS": 8}) == cores
    assert cutout_threads({"CUTOUT_THREADS": 3}) == 3


@needs_cutout
def test_loading_the_cutter_gives_its_session_the_cutout_threads(tmp_path):
    cores = len(__import__("os").sched_getaffinity(0))
    for setting, expected in ((None, cores), (1, 1)):
        app = create_app({"TESTING": True, "TORCH_THREADS": 1, "CUTOUT_THREADS": setting,
                          "REPORT_DIR": str(tmp_path)})
        with app.app_context():
            cutter = registry.get_cutter()
        # Cutouts run on ONNX Runtime: the setting is its session's thread count.
        assert cutter.runner.session.get_session_options().intra_op_num_threads == expected
