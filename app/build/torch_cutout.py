"""A torch cutout network behind the serving Cutter (training, evaluating a checkpoint, the
export's reference), fed exactly the tensor ONNX Runtime is fed when it is served."""
from app import nets
from app.build.cutout_export import preprocess_of
from app.build.torch_weights import load_state_dict
from app.inference.cutout import MEAN, STD, Cutter
from app.inference.onnx_runner import CutoutRunner
from app.storage.model_dirs import ModelError, load_card, new_card


class TorchCutout(CutoutRunner):
    """The runner base (app/inference/onnx_runner.py) over a torch network's main map."""

    def __init__(self, net, preprocess, size=None):
        super().__init__(preprocess, "torch network", size)
        self.net = net.eval()

    def run(self, x):
        import torch

        with torch.inference_mode():
            return self.net(torch.from_numpy(x))[0][0, 0].numpy()


def cutter_from_net(net, card):
    """A Cutter over a torch network in memory, preprocessed as its card says it will be served."""
    return Cutter(TorchCutout(net, preprocess_of(card)), card)


def load_torch_cutter(model_dir):
    """A torch cutout model directory's weights in a torch network (strict), behind a Cutter."""
    card = load_card(model_dir)
    try:
        net = nets.build(card.get("architecture"), "cutout")
    except ValueError as exc:
        raise ModelError(f"{model_dir}: {exc}") from None
    net.load_state_dict(load_state_dict(model_dir, card), strict=True)
    return cutter_from_net(net, card)


def cutout_card(name, architecture, input_size, *, version="1", training=None, metrics=None, **extra):
    """The card of a U-2-Net-family cutout model directory (weights and sha256 are added on write)."""
    return new_card("cutout", name, version=version, architecture=architecture, input_size=int(input_size),
                    mean=list(MEAN), std=list(STD),
                    normalisation="divide by the picture's maximum, then ImageNet mean/std (official U-2-Net)",
                    training=training, metrics=metrics, **extra)
