"""Synthetic dense scenes for the tiny DenseMLLM (issue 6): textured backgrounds split at a
horizon, textured shapes standing on the ground, per-pixel class labels, per-pixel depth from a
pinhole camera over a flat ground plane, and one referred target object with a phrase.

Everything is drawn with numpy from a numpy Generator, so a seed reproduces a scene bit for bit.
Must not import torch or anything from the C library.

Camera: level, CAMERA_HEIGHT metres above the ground, focal length FOCAL_PX pixels, principal
point at the image centre column (the horizon row varies: the scenes are crops of a taller view).
A ground pixel at row y below the horizon row h lies at depth Z = FOCAL_PX * CAMERA_HEIGHT /
(y + 0.5 - h) and lateral offset X = (x + 0.5 - w/2) * Z / FOCAL_PX.

Depth is what a depth sensor of range MAX_DEPTH_M reads (as NYUv2's is capped at 10 m): farther
ground and the sky have no valid depth (0). A wall stands at exactly MAX_DEPTH_M (a wall at a random
distance beyond the paving would look the same at every distance); an object stands on the ground at
the row of its base, so its whole visible area has that depth.

The ground is paved: joints every GRID_M metres along X and Z, drawn in perspective, whose spacing
and slant tell depth and place as on real ground.
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

CAMERA_HEIGHT = 3.0    # metres: high enough that the ground within range is not all near the horizon
FOCAL_PX = 256.0
MIN_DEPTH_M, MAX_DEPTH_M = 1.0, 10.0
GRID_M, JOINT_M = 0.5, 0.05            # paving joints: spacing and width, metres

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


def _pattern(name, yy, xx):
    """Each object class has its own surface pattern (0/1 per pixel at rows yy, columns xx), so its
    class can be told from a patch as well as from its outline: "textured shapes"."""
    if name == "ball":
        return ((xx % 12 - 6) ** 2 + (yy % 12 - 6) ** 2) < 12
    if name == "box":
        return ((xx // 8) + (yy // 8)) % 2 == 0
    if name == "tent":
        return ((xx + yy) // 6) % 2 == 0
    if name == "star":
        return np.ones(yy.shape, bool)
    if name == "ring":
        return (yy // 5) % 2 == 0
    if name == "cross":
        return (xx // 5) % 2 == 0
    if name == "pillar":
        return (xx % 10 < 2) | (yy % 10 < 2)
    if name == "traffic cone":
        return ((xx - yy) // 8) % 2 == 0
    raise ValueError(name)


def _shape_mask(name, cx, base, size, yy, xx):
    """Boolean mask (at rows yy, columns xx) of one shape whose base centre is (cx, base) and whose
    height is `size`."""
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


def _paving(rng, h, w, horizon):
    """[h, w] bool: the paving joints of the ground below `horizon`, in perspective, offset by a
    random phase so that no joint sits at a fixed column."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    below = yy + 0.5 - horizon
    z = FOCAL_PX * CAMERA_HEIGHT / np.maximum(below, 1e-6)
    x = (xx + 0.5 - w / 2) * z / FOCAL_PX + rng.uniform(0.0, GRID_M)
    z = z + rng.uniform(0.0, GRID_M)
    joint = (np.mod(x, GRID_M) < JOINT_M) | (np.mod(z, GRID_M) < JOINT_M)
    return joint & (below > 0)


def make_scene(rng, size=None):
    h, w = size if size is not None else SIZES[rng.integers(len(SIZES))]
    horizon = int(rng.integers(int(0.20 * h), int(0.40 * h)))
    top, ground = rng.choice(BACKGROUND_TOP), rng.choice(BACKGROUND_GROUND)
    # A wall hides the ground beyond MAX_DEPTH_M; the sky meets it at the horizon.
    wall_base = horizon + int(np.ceil(FOCAL_PX * CAMERA_HEIGHT / MAX_DEPTH_M - 0.5))
    split = wall_base if top == "wall" else horizon
    image = np.empty((h, w, 3), np.float64)
    image[:split] = _texture(rng, top, split, w)
    image[split:] = _texture(rng, ground, h - split, w)
    image[_paving(rng, h, w, horizon) & (np.arange(h)[:, None] >= split)] *= 0.7
    labels = np.empty((h, w), np.uint8)
    labels[:split] = CLASSES.index(top)
    labels[split:] = CLASSES.index(ground)
    rows = np.arange(h, dtype=np.float64)[:, None]
    ground_depth = FOCAL_PX * CAMERA_HEIGHT / np.maximum(rows + 0.5 - horizon, 1e-6)
    ground_depth[ground_depth > MAX_DEPTH_M] = 0.0                   # beyond the sensor's range
    depth = np.broadcast_to(ground_depth, (h, w)).astype(np.float32).copy()
    depth[:split] = MAX_DEPTH_M if top == "wall" else 0.0

    n_objects = int(rng.integers(2, 5))
    placed = []
    for _ in range(n_objects):
        name = OBJECTS[rng.integers(len(OBJECTS))]
        colour = OBJECT_COLOUR[name]
        base = int(rng.integers(wall_base + 2, h - 4))                  # within the sensor's range
        # Nearer objects (lower base) are larger, as a perspective camera sees them.
        size = int(np.clip((base - horizon) * rng.uniform(0.6, 1.0), 56, 128))
        cx = int(rng.integers(size // 3, w - size // 3))
        placed.append(dict(name=name, colour=colour, base=base, size=size, cx=cx))
    placed.sort(key=lambda o: o["base"])                               # far to near: painter's order
    owner = np.full((h, w), -1, np.int32)
    for i, o in enumerate(placed):
        # Every shape lies within `size` of its base centre: draw in that window only.
        rows = slice(max(0, o["base"] - o["size"] - 1), min(h, o["base"] + 1))
        cols = slice(max(0, o["cx"] - o["size"]), min(w, o["cx"] + o["size"] + 1))
        yy, xx = np.mgrid[rows, cols]
        inside = _shape_mask(o["name"], o["cx"], o["base"], o["size"], yy, xx)
        tint = np.array(COLOURS[o["colour"]], np.float64)
        shade = 1.0 + 0.08 * rng.standard_normal(yy.shape + (1,))
        pattern = np.where(_pattern(o["name"], yy, xx), 1.0, 0.6)[..., None]
        image[rows, cols][inside] = (tint * shade * pattern + (1.0 - pattern) * 40.0)[inside]
        mask = np.zeros((h, w), bool)
        mask[rows, cols] = inside
        labels[mask] = CLASSES.index(o["name"])
        depth[mask] = float(FOCAL_PX * CAMERA_HEIGHT / (o["base"] + 0.5 - horizon))
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


TWIN_SEPARATION = 0.25   # "on the left" needs centres this fraction of the narrower box's width apart


def referring_phrase(objects, t):
    """The phrase that singles out objects[t]: colour and name, plus "on the left" / "on the right"
    when one other object has the same colour and name and their centres are clearly apart
    sideways; None when no phrase singles it out (two twins one behind the other, or three)."""
    o = objects[t]
    phrase = "the %s %s" % (o["colour"], o["name"])
    twins = [p for p in objects if p["name"] == o["name"] and p["colour"] == o["colour"]]
    if len(twins) == 1:
        return phrase
    if len(twins) == 2:
        other = twins[0] if twins[1] is o else twins[1]
        offset = (other["box"][0] + other["box"][2] - o["box"][0] - o["box"][2]) / 2
        narrower = min(o["box"][2] - o["box"][0], other["box"][2] - other["box"][0])
        if abs(offset) < TWIN_SEPARATION * narrower:
            return None
        return phrase + (" on the left" if offset > 0 else " on the right")
    return None


def choose_target(rng, objects):
    """A random object that a phrase can single out, and that phrase; (-1, "") if none can be."""
    for t in rng.permutation(len(objects)):
        phrase = referring_phrase(objects, t)
        if phrase is not None:
            return int(t), phrase
    return -1, ""
