"""Synthetic dense scenes for the tiny DenseMLLM (issue 6): textured backgrounds split at a
horizon, textured shapes standing on the ground, per-pixel class labels, per-pixel depth from a
pinhole camera over a flat ground plane, and one referred target object with a phrase.

Everything is drawn with numpy from a numpy Generator, so a seed reproduces a scene bit for bit.
Must not import torch or anything from the C library.

Depth model: camera at CAMERA_HEIGHT metres looking level, focal length FOCAL_PX pixels. A ground
pixel at row y below the horizon row h lies at depth FOCAL_PX * CAMERA_HEIGHT / (y + 0.5 - h);
an object stands on the ground at the row of its base, so its whole visible area has that depth;
a wall stands where the ground ends, at MAX_DEPTH_M (a wall at a random distance would look the
same at every distance: depth nobody could infer); sky has no valid depth (0). Depths are capped
to MAX_DEPTH_M.
"""
import numpy as np

BACKGROUND_TOP = ["sky", "wall"]
BACKGROUND_GROUND = ["grass", "sand", "water", "road"]
OBJECTS = ["ball", "box", "tent", "star", "ring", "cross", "pillar", "traffic cone"]
CLASSES = BACKGROUND_TOP + BACKGROUND_GROUND + OBJECTS          # label value = index
COLOURS = {"red": (210, 40, 40), "blue": (40, 70, 220), "yellow": (235, 210, 40),
           "purple": (140, 50, 170), "orange": (240, 130, 20), "white": (240, 240, 240),
           "black": (25, 25, 25), "pink": (240, 120, 190)}
# Each object class has its own colour (as well as its own pattern): a tiny model trained for
# minutes can then tell the classes apart; phrases still name the colour, and position when needed.
OBJECT_COLOUR = dict(zip(OBJECTS, COLOURS))
SIZES = [(256, 256), (256, 320), (320, 256)]                   # (height, width)

CAMERA_HEIGHT = 1.5
FOCAL_PX = 256.0
MIN_DEPTH_M, MAX_DEPTH_M = 1.0, 20.0

# Base colour and noise amplitude of each background texture.
TEXTURES = {"sky": ((120, 170, 235), 6), "wall": ((150, 120, 100), 14), "grass": ((60, 150, 50), 22),
            "sand": ((215, 190, 130), 16), "water": ((40, 100, 160), 12), "road": ((85, 85, 90), 14)}


class Scene:
    """image [H,W,3] uint8, labels [H,W] uint8 (CLASSES index), depth [H,W] float32 metres (0 =
    invalid), objects: list of dicts (name, colour, box (x0,y0,x1,y1) of the visible pixels,
    mask [H,W] bool of the visible pixels, depth), target: index into objects, phrase: str."""


def _texture(rng, name, h, w):
    (r, g, b), amp = TEXTURES[name]
    noise = rng.normal(0.0, amp, (h, w, 1))
    img = np.concatenate([np.full((h, w, 1), c, np.float64) for c in (r, g, b)], axis=2) + noise
    yy, xx = np.mgrid[0:h, 0:w]
    if name == "sky":
        img += (yy[..., None] / max(h, 1)) * 30.0                      # lighter towards the horizon
    elif name == "wall":
        mortar = ((yy % 16) < 2) | (((xx + 16 * ((yy // 16) % 2)) % 32) < 2)
        img[mortar] = (200, 195, 185)
    elif name == "water":
        img += (np.sin(yy[..., None] * 0.9) * 10.0)
    elif name == "road":
        img[(np.abs(xx - w // 2) < 3) & ((yy // 10) % 2 == 0)] = (230, 230, 230)
    return img


def _pattern(name, h, w):
    """Each object class has its own surface pattern (0/1 per pixel), so its class can be told from
    a patch as well as from its outline: "textured shapes"."""
    yy, xx = np.mgrid[0:h, 0:w]
    if name == "ball":
        return ((xx % 12 - 6) ** 2 + (yy % 12 - 6) ** 2) < 12
    if name == "box":
        return ((xx // 8) + (yy // 8)) % 2 == 0
    if name == "tent":
        return ((xx + yy) // 6) % 2 == 0
    if name == "star":
        return np.ones((h, w), bool)
    if name == "ring":
        return (yy // 5) % 2 == 0
    if name == "cross":
        return (xx // 5) % 2 == 0
    if name == "pillar":
        return (xx % 10 < 2) | (yy % 10 < 2)
    if name == "traffic cone":
        return ((xx - yy) // 8) % 2 == 0
    raise ValueError(name)


def _shape_mask(name, cx, base, size, h, w):
    """Boolean mask of one shape whose base centre is (cx, base) and whose height is `size`."""
    yy, xx = np.mgrid[0:h, 0:w]
    x, y = xx - cx, base - yy                                          # y up from the base
    s = float(size)
    if name == "ball":
        return x * x + (y - s / 2) ** 2 <= (s / 2) ** 2
    if name == "box":
        return (np.abs(x) <= s / 2) & (y >= 0) & (y <= s)
    if name == "tent":
        return (y >= 0) & (y <= s) & (np.abs(x) <= (s - y) * 0.6)
    if name == "traffic cone":
        return (y >= 0) & (y <= s) & (np.abs(x) <= 4 + (s - y) * 0.22)
    if name == "pillar":
        return (np.abs(x) <= s * 0.18) & (y >= 0) & (y <= s)
    if name == "ring":
        r2 = x * x + (y - s / 2) ** 2
        return (r2 <= (s / 2) ** 2) & (r2 >= (s / 4) ** 2)
    if name == "cross":
        c = y - s / 2
        return ((np.abs(x) <= s / 6) & (np.abs(c) <= s / 2)) | ((np.abs(c) <= s / 6) & (np.abs(x) <= s / 2))
    if name == "star":
        c = y - s / 2
        angle = np.arctan2(c, x)
        radius = np.sqrt(x * x + c * c)
        edge = s / 2 * (0.55 + 0.45 * np.cos(5 * (angle - np.pi / 2)))
        return radius <= edge
    raise ValueError(name)


def make_scene(rng, size=None):
    h, w = size if size is not None else SIZES[rng.integers(len(SIZES))]
    horizon = int(rng.integers(int(0.30 * h), int(0.50 * h)))
    top, ground = rng.choice(BACKGROUND_TOP), rng.choice(BACKGROUND_GROUND)
    image = np.empty((h, w, 3), np.float64)
    image[:horizon] = _texture(rng, top, horizon, w)
    image[horizon:] = _texture(rng, ground, h - horizon, w)
    labels = np.empty((h, w), np.uint8)
    labels[:horizon] = CLASSES.index(top)
    labels[horizon:] = CLASSES.index(ground)
    rows = np.arange(h, dtype=np.float64)[:, None]
    ground_depth = np.minimum(MAX_DEPTH_M, FOCAL_PX * CAMERA_HEIGHT / np.maximum(rows + 0.5 - horizon, 1e-6))
    depth = np.broadcast_to(ground_depth, (h, w)).astype(np.float32).copy()
    if top == "sky":
        depth[:horizon] = 0.0
    else:
        depth[:horizon] = MAX_DEPTH_M

    n_objects = int(rng.integers(2, 5))
    placed = []
    for _ in range(n_objects):
        name = OBJECTS[rng.integers(len(OBJECTS))]
        colour = OBJECT_COLOUR[name]
        base = int(rng.integers(horizon + 24, h - 4))
        # Nearer objects (lower base) are larger, as a perspective camera sees them.
        size = int(np.clip((base - horizon) * rng.uniform(0.6, 1.0), 56, 128))
        cx = int(rng.integers(size // 3, w - size // 3))
        placed.append(dict(name=name, colour=colour, base=base, size=size, cx=cx))
    placed.sort(key=lambda o: o["base"])                               # far to near: painter's order
    owner = np.full((h, w), -1, np.int32)
    for i, o in enumerate(placed):
        mask = _shape_mask(o["name"], o["cx"], o["base"], o["size"], h, w)
        tint = np.array(COLOURS[o["colour"]], np.float64)
        shade = 1.0 + 0.08 * rng.standard_normal((h, w, 1))
        pattern = np.where(_pattern(o["name"], h, w), 1.0, 0.6)[..., None]
        image[mask] = (tint * shade * pattern + (1.0 - pattern) * 40.0)[mask]
        labels[mask] = CLASSES.index(o["name"])
        depth[mask] = float(min(MAX_DEPTH_M, FOCAL_PX * CAMERA_HEIGHT / (o["base"] + 0.5 - horizon)))
        owner[mask] = i
    objects = []
    for i, o in enumerate(placed):
        visible = owner == i
        if visible.sum() < 200:
            continue
        ys, xs = np.nonzero(visible)
        objects.append(dict(name=o["name"], colour=o["colour"], mask=visible,
                            box=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                            depth=float(depth[ys[0], xs[0]])))
    scene = Scene()
    scene.image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    scene.labels, scene.depth, scene.objects = labels, depth, objects
    scene.target, scene.phrase = choose_target(rng, objects)
    return scene


def choose_target(rng, objects):
    """A random object that a phrase can single out, and that phrase: colour and name, plus
    "on the left" / "on the right" when one other object has the same colour and name."""
    for t in rng.permutation(len(objects)):
        o = objects[t]
        phrase = "the %s %s" % (o["colour"], o["name"])
        twins = [p for p in objects if p["name"] == o["name"] and p["colour"] == o["colour"]]
        if len(twins) == 1:
            return int(t), phrase
        if len(twins) == 2:
            other = twins[0] if twins[1] is o else twins[1]
            left = o["box"][0] + o["box"][2] < other["box"][0] + other["box"][2]
            return int(t), phrase + (" on the left" if left else " on the right")
    return -1, ""
