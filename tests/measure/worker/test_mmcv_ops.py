"""The mmcv._ext stand-in: mmcv's own Python ops (mmcv.ops.nms, RoIAlign, DeformConv2d, ...) run on
it with the semantics mmcv documents, checked against torchvision and against values worked out by
hand; an op without a stand-in names itself; a real mmcv._ext is never replaced."""
import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision.ops as tv

from mcx_review.measure.worker import mmcv_ops

STAND_IN = mmcv_ops.install()
import mmcv.ops as ops  # noqa: E402  (needs the stand-in: mmcv-lite has no mmcv._ext)


def test_the_stand_in_is_installed_because_this_mmcv_has_no_compiled_ops():
    assert STAND_IN is not None and mmcv_ops.install() is STAND_IN  # idempotent
    assert sys.modules["mmcv._ext"] is STAND_IN


def _boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 40 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_nms_keeps_what_torchvision_keeps_highest_score_first():
    boxes, scores = _boxes(300), torch.rand(300, generator=torch.Generator().manual_seed(1))
    dets, keep = ops.nms(boxes, scores, iou_threshold=0.5)
    assert torch.equal(keep, tv.nms(boxes, scores, 0.5))
    assert torch.all(dets[:-1, 4] >= dets[1:, 4]), "kept boxes come highest score first"
    assert torch.equal(dets[:, :4], boxes[keep])


def test_nms_docstring_example_and_offset_one():
    """mmcv's docstring example keeps 3 of 7 boxes; with offset=1 a box is x2 - x1 + 1 wide."""
    boxes = torch.tensor([[49.1, 32.4, 51.0, 35.9], [49.3, 32.9, 51.0, 35.3], [49.2, 31.8, 51.0, 35.4],
                          [35.1, 11.5, 39.1, 15.7], [35.6, 11.8, 39.3, 14.2], [35.3, 11.5, 39.9, 14.5],
                          [35.2, 11.7, 39.7, 15.7]])
    scores = torch.tensor([0.9, 0.9, 0.5, 0.5, 0.5, 0.4, 0.3])
    _, keep = ops.nms(boxes, scores, 0.6)
    assert len(keep) == 3
    # two 2x2 boxes overlapping by 1 column: IoU 2/6 with offset 0, 6/12 = 0.5 with offset 1 (3x3 each)
    pair, pair_scores = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]]), torch.tensor([0.9, 0.8])
    assert len(ops.nms(pair, pair_scores, 0.4, offset=0)[1]) == 2
    assert ops.nms(pair, pair_scores, 0.4, offset=1)[1].tolist() == [0]
    assert len(ops.nms(pair, pair_scores, 0.5, offset=1)[1]) == 2  # suppression needs IoU > threshold


def test_batched_nms_equals_torchvisions_per_class_nms():
    boxes, scores = _boxes(400, 2), torch.rand(400, generator=torch.Generator().manual_seed(3))
    idxs = torch.randint(0, 5, (400,), generator=torch.Generator().manual_seed(4))
    dets, keep = ops.batched_nms(boxes, scores, idxs, dict(type="nms", iou_threshold=0.5))
    assert torch.equal(keep, tv.batched_nms(boxes, scores, idxs, 0.5))
    assert torch.equal(dets[:, 4], scores[keep])


def test_soft_nms_decays_instead_of_dropping():
    """Two boxes with IoU 0.5 and one far away: linear soft-NMS keeps all three, the overlapped one
    at 0.8 * (1 - 0.5); naive soft-NMS is plain NMS."""
    boxes = torch.tensor([[0.0, 0.0, 4.0, 3.0], [0.0, 1.0, 4.0, 4.0], [10.0, 10.0, 12.0, 12.0]])
    boxes[1] = torch.tensor([0.0, 0.0, 4.0, 2.0])  # IoU with box 0: 8 / 12
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = ops.soft_nms(boxes, scores, iou_threshold=0.3, method="linear", min_score=1e-3)
    assert keep.tolist() == [0, 2, 1]
    assert dets[:, 4].tolist() == pytest.approx([0.9, 0.7, 0.8 * (1 - 8 / 12)])
    _, keep = ops.soft_nms(boxes, scores, iou_threshold=0.3, method="naive")
    assert keep.tolist() == [0, 2]
    dets, _ = ops.soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, method="gaussian")
    assert dets[2, 4].item() == pytest.approx(0.8 * torch.exp(torch.tensor(-(8 / 12) ** 2 / 0.5)).item())


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_equals_torchvision(aligned, sampling_ratio):
    feats = torch.randn(2, 8, 20, 24, generator=torch.Generator().manual_seed(5))
    rois = torch.cat([torch.tensor([[0.0], [1.0], [1.0]]), _boxes(3, 6) / 2], dim=1)
    layer = ops.RoIAlign((7, 7), spatial_scale=0.5, sampling_ratio=sampling_ratio, aligned=aligned)
    assert torch.allclose(layer(feats, rois), tv.roi_align(feats, rois, (7, 7), 0.5, sampling_ratio, aligned))


def test_roi_align_by_hand_aligned_moves_half_a_pixel():
    """2x2 map [[1, 2], [3, 4]], RoI (0, 0)-(1, 1), one bin, one sample at its centre: (0.5, 0.5)
    interpolates to 2.5; aligned=True shifts the box by -0.5 pixel, so the sample sits on (0, 0): 1."""
    feats = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    roi = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]])
    assert ops.roi_align(feats, roi, (1, 1), 1.0, 1, "avg", False).item() == pytest.approx(2.5)
    assert ops.roi_align(feats, roi, (1, 1), 1.0, 1, "avg", True).item() == pytest.approx(1.0)


def test_roi_align_max_pooling_names_itself():
    with pytest.raises(mmcv_ops.MissingCompiledOp, match="roi_align_forward"):
        ops.roi_align(torch.randn(1, 1, 4, 4), torch.tensor([[0.0, 0, 0, 2, 2]]), (2, 2), 1.0, 0, "max", True)


def test_roi_pool_equals_torchvision_and_takes_the_max():
    feats = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    rois = torch.cat([torch.zeros(5, 1), _boxes(5, 8) / 8], dim=1)
    assert torch.equal(ops.RoIPool((3, 3), 1.0)(feats, rois), tv.roi_pool(feats, rois, (3, 3), 1.0))
    grid = torch.arange(16.0).view(1, 1, 4, 4)
    assert ops.roi_pool(grid, torch.tensor([[0.0, 0, 0, 3, 3]]), (1, 1), 1.0).item() == 15.0


def test_deform_conv_with_zero_offsets_is_a_plain_convolution_and_offsets_move_samples():
    torch.manual_seed(9)
    conv = ops.DeformConv2d(4, 6, 3, padding=1, groups=2, deform_groups=2).eval()
    x = torch.randn(1, 4, 10, 12)
    zero = torch.zeros(1, 2 * 2 * 9, 10, 12)
    with torch.no_grad():
        assert torch.allclose(conv(x, zero), torch.nn.functional.conv2d(x, conv.weight, padding=1, groups=2),
                              atol=1e-5)
        # a 1x1 deformable conv with offset (dy, dx) = (0, 1) everywhere reads the pixel to the right
        one = ops.DeformConv2d(1, 1, 1, bias=False).eval()
        one.weight.fill_(1.0)
        img = torch.arange(12.0).view(1, 1, 3, 4)
        shift = torch.stack([torch.zeros(3, 4), torch.ones(3, 4)]).unsqueeze(0)
        out = one(img, shift)
    assert out[0, 0, :, :3].tolist() == img[0, 0, :, 1:].tolist()
    assert out[0, 0, :, 3].tolist() == [0.0, 0.0, 0.0]  # sampled past the border: zero
    with torch.no_grad():
        assert torch.allclose(out, tv.deform_conv2d(img, shift, one.weight))


def test_modulated_deform_conv_scales_each_sample_by_its_mask():
    torch.manual_seed(10)
    conv = ops.ModulatedDeformConv2d(3, 5, 3, padding=1, bias=True).eval()
    x = torch.randn(1, 3, 8, 8)
    offset = torch.zeros(1, 18, 8, 8)
    with torch.no_grad():
        plain = torch.nn.functional.conv2d(x, conv.weight, padding=1)
        full = conv(x, offset, torch.ones(1, 9, 8, 8))
        half = conv(x, offset, torch.full((1, 9, 8, 8), 0.5))
        moved = conv(x, torch.randn(1, 18, 8, 8), torch.rand(1, 9, 8, 8, generator=torch.Generator().manual_seed(1)))
    bias = conv.bias.view(1, -1, 1, 1)
    assert torch.allclose(full, plain + bias, atol=1e-5)
    assert torch.allclose(half, plain / 2 + bias, atol=1e-5)
    assert moved.shape == full.shape


def _psamask_by_the_book(x, psa_type, h_mask, w_mask):
    """mmcv's psamask.cpp, loop for loop (psamask_collect_forward / psamask_distribute_forward)."""
    n, _, hf, wf = x.shape
    half_h, half_w = (h_mask - 1) // 2, (w_mask - 1) // 2
    out = torch.zeros(n, hf * wf, hf, wf)
    for b in range(n):
        for h in range(hf):
            for w in range(wf):
                for hidx in range(max(0, half_h - h), min(h_mask, hf + half_h - h)):
                    for widx in range(max(0, half_w - w), min(w_mask, wf + half_w - w)):
                        value = x[b, hidx * w_mask + widx, h, w]
                        other = (hidx + h - half_h) * wf + (widx + w - half_w)
                        if psa_type == "collect":
                            out[b, other, h, w] = value
                        else:
                            out[b, h * wf + w, hidx + h - half_h, widx + w - half_w] = value
    return out


@pytest.mark.parametrize("psa_type", ["collect", "distribute"])
@pytest.mark.parametrize("mask_size", [(3, 5), (7, 7)])  # (7, 7) reaches past a 4x6 map every way
def test_psamask_writes_what_mmcvs_cpu_kernel_writes(psa_type, mask_size):
    x = torch.randn(2, mask_size[0] * mask_size[1], 4, 6)
    out = ops.PSAMask(psa_type, mask_size)(x)
    assert out.shape == (2, 24, 4, 6)
    assert torch.equal(out, _psamask_by_the_book(x, psa_type, *mask_size))


def test_masked_conv_is_the_plain_convolution_where_the_mask_is_set_and_zero_elsewhere():
    torch.manual_seed(0)
    conv = ops.MaskedConv2d(3, 5, 3, padding=1)
    x = torch.randn(1, 3, 6, 7)
    mask = (torch.rand(1, 6, 7) > 0.5).float()
    full = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)
    out = conv(x, mask)
    assert torch.allclose(out, full * mask[:, None], atol=1e-5)
    assert torch.equal(out[:, :, mask[0] == 0], torch.zeros_like(out[:, :, mask[0] == 0]))
    assert torch.equal(conv(x, torch.zeros(1, 6, 7)), torch.zeros_like(full)), "nothing masked: all zero"


def _bilinear(img, y, x):
    """mmcv's bilinear_interpolate (roi_align / deform_roi_pool kernels), for one point."""
    _, height, width = img.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return torch.zeros(img.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * img[:, y_low, x_low] + hy * lx * img[:, y_low, x_high]
            + ly * hx * img[:, y_high, x_low] + ly * lx * img[:, y_high, x_high])


def _deform_roi_pool_by_the_book(x, rois, offset, out_size, scale, sampling_ratio, gamma):
    """mmcv's deform_roi_pool_forward kernel, loop for loop."""
    ph_n, pw_n = out_size
    out = torch.zeros(rois.shape[0], x.shape[1], ph_n, pw_n)
    for n, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        start_w, start_h = x1 * scale - 0.5, y1 * scale - 0.5
        roi_w, roi_h = x2 * scale - 0.5 - start_w, y2 * scale - 0.5 - start_h
        bin_h, bin_w = roi_h / ph_n, roi_w / pw_n
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / ph_n)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pw_n)
        for ph in range(ph_n):
            for pw in range(pw_n):
                sw = start_w + gamma * roi_w * float(offset[n, 0, ph, pw])
                sh = start_h + gamma * roi_h * float(offset[n, 1, ph, pw])
                total = torch.zeros(x.shape[1])
                for iy in range(grid_h):
                    yy = sh + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        xx = sw + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        total += _bilinear(x[int(b)], yy, xx)
                out[n, :, ph, pw] = total / max(grid_h * grid_w, 1)
    return out


@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_deform_roi_pool_moves_each_bin_as_mmcvs_kernel_does(sampling_ratio):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, 14)
    rois = torch.tensor([[0, 2.0, 3.0, 15.0, 11.0], [1, 0.0, 0.0, 27.0, 23.0], [0, 20.0, 14.0, 26.0, 22.0]])
    offset = torch.randn(3, 2, 3, 3) * 0.5  # some bins pushed past the map's edge
    got = ops.deform_roi_pool(x, rois, offset, (3, 3), 0.5, sampling_ratio, 0.1)
    want = _deform_roi_pool_by_the_book(x, rois, offset, (3, 3), 0.5, sampling_ratio, 0.1)
    assert torch.allclose(got, want, atol=1e-5)
    plain = ops.deform_roi_pool(x, rois, None, (3, 3), 0.5, sampling_ratio, 0.1)
    assert torch.allclose(plain, tv.roi_align(x, rois, (3, 3), 0.5, sampling_ratio, aligned=True), atol=1e-6)
    assert not torch.allclose(got, plain), "the offsets moved something"


def test_an_op_without_a_stand_in_names_itself():
    with pytest.raises(mmcv_ops.MissingCompiledOp, match="needs compiled mmcv op sigmoid_focal_loss_forward") as info:
        ops.sigmoid_focal_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    assert mmcv_ops.missing_op(RuntimeError("wrapped").with_traceback(None)) is None
    wrapped = RuntimeError("tracing failed")
    wrapped.__cause__ = info.value
    assert mmcv_ops.missing_op(wrapped) == "sigmoid_focal_loss_forward"


def test_used_ops_lists_the_stand_ins_called_since_reset():
    mmcv_ops.reset()
    assert mmcv_ops.used_ops() == []
    ops.nms(_boxes(5), torch.rand(5), 0.5)
    ops.roi_pool(torch.randn(1, 1, 4, 4), torch.tensor([[0.0, 0, 0, 2, 2]]), (1, 1), 1.0)
    assert mmcv_ops.used_ops() == ["nms", "roi_pool_forward"]


def test_a_real_mmcv_ext_is_never_replaced(tmp_path):
    """In a fresh process whose mmcv finds an importable ``mmcv._ext`` (here a module on mmcv's
    package path), install() leaves it alone and mmcv.ops calls it."""
    (tmp_path / "_ext.py").write_text(textwrap.dedent("""
        import torch
        def __getattr__(name):
            def op(*args, **kwargs):
                raise RuntimeError("the real " + name)
            return op
    """))
    script = textwrap.dedent(f"""
        import sys, mmcv
        mmcv.__path__.append({str(tmp_path)!r})
        from mcx_review.measure.worker import mmcv_ops
        assert mmcv_ops.install() is None and mmcv_ops.installed() is None
        import torch, mmcv.ops
        try:
            mmcv.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        except RuntimeError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "the real nms"
