"""PIL reference for wae-data's CelebA preprocessing (crop box + Lanczos to 64x64).

Builds the synthetic aligned image of `crates/wae-data/tests/celeba.rs` (178x218 RGB:
R a horizontal ramp x*255//177, G a vertical ramp y*255//217, B a 10-pixel checkerboard
of 0/255), crops it with PIL to (19, 39, 159, 179) and resizes it to 64x64 with
Image.LANCZOS, as the paper's data pipeline does, and writes the result to
`crates/wae-data/tests/data/celeba_pil_reference.png`.

Run: python3 xtask/reference/celeba_preprocess_reference.py
(Pillow 13.0.0 made the committed file.)
"""
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 178, 218
x = np.arange(W)[None, :].repeat(H, 0)
y = np.arange(H)[:, None].repeat(W, 1)
rgb = np.stack(
    [x * 255 // 177, y * 255 // 217, np.where(((x // 10) + (y // 10)) % 2 == 0, 255, 0)],
    axis=-1,
).astype(np.uint8)
im = Image.fromarray(rgb, "RGB")
out = im.crop((19, 39, 159, 179)).resize((64, 64), Image.LANCZOS)
dest = Path(__file__).resolve().parents[2] / "crates/wae-data/tests/data/celeba_pil_reference.png"
out.save(dest)
a = np.asarray(out).astype(np.int64)
print("wrote", dest, "shape", a.shape, "channel sums", a.sum(axis=(0, 1)).tolist())
