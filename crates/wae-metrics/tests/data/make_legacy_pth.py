#!/usr/bin/env python3
"""Makes tests/data/legacy_state_dict.pth: a tiny state_dict in torch's legacy
(non-zip) format, the format of pt_inception-2015-12-05-6726825d.pth.

Run:  python3 crates/wae-metrics/tests/data/make_legacy_pth.py
The Rust test (tests/pth.rs) checks every value from the same formulas:
- block.conv.weight   (4, 3, 3, 3) f32  k / 100 - 0.5      (k = flat index)
- block.bn.weight     (4,)         f32  1 + k / 10
- block.bn.bias       (4,)         f32  -k / 10
- block.bn.running_mean (4,)       f32  k / 1000
- block.bn.running_var  (4,)       f32  2 + k
- block.bn.num_batches_tracked ()  i64  7
- fc.weight           (3, 5)       f32  transpose of a contiguous (5, 3) arange: value (k % 3) * 5 + k // 3,
                                        stored with strides (1, 3) (non-contiguous)
- shared.tail         (6,)         f32  a view at offset 4 of a 10-element storage 100 + k (so 104..109)
- double              (2, 2)       f64  1/3 + k
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    sd = {}
    sd["block.conv.weight"] = torch.arange(4 * 3 * 3 * 3, dtype=torch.float32).reshape(4, 3, 3, 3) / 100 - 0.5
    sd["block.bn.weight"] = 1 + torch.arange(4, dtype=torch.float32) / 10
    sd["block.bn.bias"] = -torch.arange(4, dtype=torch.float32) / 10
    sd["block.bn.running_mean"] = torch.arange(4, dtype=torch.float32) / 1000
    sd["block.bn.running_var"] = 2 + torch.arange(4, dtype=torch.float32)
    sd["block.bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    sd["fc.weight"] = torch.arange(15, dtype=torch.float32).reshape(5, 3).t()
    assert not sd["fc.weight"].is_contiguous()
    base = 100 + torch.arange(10, dtype=torch.float32)
    sd["shared.head"] = base[:4]
    sd["shared.tail"] = base[4:]
    sd["double"] = 1 / 3 + torch.arange(4, dtype=torch.float64).reshape(2, 2)
    from collections import OrderedDict

    sd = OrderedDict(sd)
    path = os.path.join(HERE, "legacy_state_dict.pth")
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    back = torch.load(path, weights_only=True)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
