"""Test-time augmentation (``publish.tta``): the exported graphs answer the mean of the softmax
probabilities of a few views of each image (the image, its mirror, one-pixel shifts).

It lives inside the serving graph (``training.publish.export.ServingModule``), so the SavedModel,
the TFLite file converted from it and therefore every runner, the service included, serve exactly
what was measured; nothing outside the graph applies it again (a version records its views in
metadata.json's ``tta`` block, for readers, not for a second pass). One function, ``average``,
makes the views for the export, for the temperature fit on the validation split
(``training.publish.release.fit_calibration``) and for the tta study's measurement
(``training.ablation.fashion``), so what the study measures is what a version serves.

Every op it adds is a TFLite builtin (REVERSE_V2, PAD, STRIDED_SLICE, CONCATENATION, RESHAPE,
MEAN), so no runner needs the Flex delegate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from training.config import ConfigError, tta_has_view


@dataclass(frozen=True)
class View:
    """One view of an image: mirrored left to right, then its content moved ``dy`` pixels down
    (negative: up) and ``dx`` right (negative: left), the uncovered edge filled with 0 - the
    fill training's random translation uses (``training.data.augment``)."""
    flip: bool = False
    dy: int = 0
    dx: int = 0

    @property
    def name(self) -> str:
        parts = ["flip"] if self.flip else []
        if self.dy:
            parts.append(f"{'down' if self.dy > 0 else 'up'}{abs(self.dy)}")
        if self.dx:
            parts.append(f"{'right' if self.dx > 0 else 'left'}{abs(self.dx)}")
        return "+".join(parts) or "identity"


IDENTITY = View()
BLOCK = "tta"     # metadata.json's block naming the views baked into the graphs


def views(publish, augment, side: int) -> tuple:
    """The views ``publish.tta`` asks for, for images ``side`` pixels across; () when it is off.

    Only views the training augmentation already produces, so the model is asked about images
    like those it learned from: the mirror only where ``augment.flip`` trains on mirrored
    images (Fashion-MNIST's clothes are symmetric; a folder of digits or letters turns flips
    off, as a mirrored 2 or R is no digit or letter), the shifts only where ``augment.translate``
    moves images at least ``publish.tta_shift`` pixels (the default 10% of 28 px: up to 2.8 px)."""
    if not publish.tta:
        return ()
    if not tta_has_view(publish, augment):
        raise ConfigError("'publish.tta' is on but the training augmentation gives no view to average "
                          "(augment.flip off and no shift: augment.translate or publish.tta_shift is 0)")
    found = [IDENTITY]
    if augment.enabled and augment.flip:
        found.append(View(flip=True))
    shift = publish.tta_shift
    if shift and augment.enabled and augment.translate > 0:
        if shift > augment.translate * side:
            raise ConfigError(f"'publish.tta_shift' ({shift} px) is more than training's translation moves a "
                              f"{side}-pixel image (augment.translate {augment.translate:g}: "
                              f"{augment.translate * side:.1f} px); lower it or set it to 0")
        found += [View(dy=-shift), View(dy=shift), View(dx=-shift), View(dx=shift)]
    return tuple(found)


def block(chosen: Sequence[View]) -> dict:
    """metadata.json's ``tta`` block: what the graphs average (before the baked-in temperature)."""
    return {"views": [v.name for v in chosen], "combine": "mean of the views' softmax probabilities",
            "in_graph": True}


def stack(images, chosen: Sequence[View]):
    """Float images [N,H,W,C] -> [V*N,H,W,C]: every view of the batch, one view after another."""
    from training.keras2 import tf
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError("test-time views need a static image height and width")
    pad = max(max(abs(v.dy), abs(v.dx)) for v in chosen)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) if pad else images
    out = []
    for view in chosen:
        x = images
        if view.dy or view.dx:
            top, left = pad - view.dy, pad - view.dx
            x = padded[:, top:top + height, left:left + width, :]
        if view.flip:
            x = tf.reverse(x, axis=[2])
        out.append(x)
    return tf.concat(out, axis=0) if len(out) > 1 else out[0]


def mean_over_views(values, count: int):
    """[V*N, ...] (as ``stack`` orders rows) -> [N, ...]: each image's mean over the V views."""
    from training.keras2 import tf
    return tf.reduce_mean(tf.reshape(values, [count, -1, *values.shape[1:]]), axis=0)


def average(forward: Callable, images, chosen: Sequence[View]):
    """``forward`` (a float batch -> a tensor, or a tuple of tensors with None allowed, one row
    per image) run once on every view of ``images``, each output averaged over the views."""
    outputs = forward(stack(images, chosen))
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(None if o is None else mean_over_views(o, len(chosen)) for o in outputs)
    return mean_over_views(outputs, len(chosen))


def averaged(model, chosen: Sequence[View]) -> Callable:
    """``model`` as a callable answering the mean of its probabilities over ``chosen``, called
    like the model itself (``training.fit.train.predict_probabilities`` batches it)."""
    return lambda images, training=False: average(lambda x: model(x, training=training), images, chosen)
