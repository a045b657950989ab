"""Test-time augmentation views as numpy makes them, written without the exported graph's
pad-and-slice, so the graph's views (training/publish/tta.py) are checked against an
independent construction."""
import numpy as np


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``x`` [N,H,W,C] with its content moved dy rows down and dx columns right, zeros shifted in."""
    out = np.roll(x, (dy, dx), axis=(1, 2))
    if dy > 0:
        out[:, :dy] = 0
    elif dy < 0:
        out[:, dy:] = 0
    if dx > 0:
        out[:, :, :dx] = 0
    elif dx < 0:
        out[:, :, dx:] = 0
    return out


NUMPY_VIEWS = {"identity": lambda x: x, "flip": lambda x: x[:, :, ::-1],
               "up1": lambda x: shifted(x, -1, 0), "down1": lambda x: shifted(x, 1, 0),
               "left1": lambda x: shifted(x, 0, -1), "right1": lambda x: shifted(x, 0, 1)}
