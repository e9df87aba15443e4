"""dedup.hashing: views line up with their names; hashes survive re-encoding, not a different image."""

from __future__ import annotations

import numpy as np

from janus_build.dedup.hashing import decode, detail, hamming, image_hashes, signed64, view_hashes, view_names, views
from janus_build.dedup.testset import jpeg_bytes, textured_image


def test_views_and_names_agree_in_number_and_order():
    image = textured_image(3, 100)
    for crops in (False, True):
        for flips in (False, True):
            names = view_names(crops, flips)
            produced = list(views(image, crops, flips))
            assert [i for i, _ in produced] == list(range(len(names)))
    assert len(view_names(True, True)) == 38 and view_names(False, False) == ("full",)
    mirrored = dict(views(image, False, True))[1]
    assert np.array_equal(np.asarray(mirrored)[:, ::-1], np.asarray(image))
    crop = dict(views(image, True, False))[view_names(True, False).index("crop90-0-0")]
    assert crop.size == (90, 90) and np.array_equal(np.asarray(crop), np.asarray(image)[:90, :90])


def test_hashes_are_stable_under_reencoding_and_far_for_another_image():
    original = textured_image(11, 256)
    copy = decode(jpeg_bytes(original, 25))
    other = textured_image(12, 256)
    p0, d0 = image_hashes(original)
    p1, d1 = image_hashes(copy)
    p2, d2 = image_hashes(other)
    near = hamming(np.asarray([p0, d0], dtype=np.uint64), np.asarray([p1, d1], dtype=np.uint64))
    far = hamming(np.asarray([p0, d0], dtype=np.uint64), np.asarray([p2, d2], dtype=np.uint64))
    assert near.max() <= 6 and far.min() >= 12


def test_decode_bounds_the_size_and_plain_images_have_no_detail():
    assert max(decode(jpeg_bytes(textured_image(1, 1200))).size) <= 320
    flat = textured_image(1, 64).point(lambda v: 90)
    assert detail(flat) < 0.5 < 20 < detail(textured_image(1, 64))
    assert view_hashes(flat, True, True, min_detail=2.0) == []


def test_signed64_keeps_the_bits():
    for value in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        signed = signed64(value)
        assert -(2**63) <= signed < 2**63
        assert np.asarray([signed], dtype=np.int64).view(np.uint64)[0] == value
