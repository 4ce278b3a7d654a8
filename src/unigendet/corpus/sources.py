"""Real photographs that install from package registries, with subjects and licences.

Each photo belongs to a *group*: near-duplicates (stereo pairs, two views of one
street) share a group so that a split by group never puts one view in train and
the other in test. Only colour photographs are listed: no drawings, renders,
paintings, grayscale scans or edited images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourcePhoto:
    id: str  # unique, e.g. "skimage/astronaut"
    path: Path
    group: str  # split unit: near-duplicates share one
    subject: str  # for captions
    package: str  # where it installs from
    licence: str


# The Debian packages that supply photos (the checkout's debian-packages.txt lists them for the Makefile)
DEBIAN_PACKAGES = ("opencv-doc", "mate-backgrounds", "lomiri-wallpapers-16.04")
# Below this many photos the corpus is a fraction of the documented one: build_corpus stops unless allowed
MIN_PHOTOS = 40
PHOTO_SOURCES = ("all", "python")  # python: only the photos pip installs (same on every machine)

OPENCV_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
MATE_DIR = Path("/usr/share/backgrounds/mate/nature")
LOMIRI_DIR = Path("/usr/share/backgrounds")

SKIMAGE = {  # file: (group, subject)
    "astronaut.png": ("astronaut", "an astronaut in an orange suit"),
    "chelsea.png": ("chelsea", "a tabby cat"),
    "coffee.png": ("coffee", "a cup of coffee on a saucer"),
    "rocket.jpg": ("rocket", "a rocket on a launch pad"),
    "hubble_deep_field.jpg": ("hubble", "galaxies in deep space"),
    "motorcycle_left.png": ("motorcycle", "a motorcycle in a workshop"),
    "motorcycle_right.png": ("motorcycle", "a motorcycle in a workshop"),
}
OPENCV = {
    "aero1.jpg": ("aero", "an aerial view of a town"), "aero3.jpg": ("aero", "an aerial view of a town"),
    "aloeL.jpg": ("aloe", "an aloe plant in a pot"), "aloeR.jpg": ("aloe", "an aloe plant in a pot"),
    "apple.jpg": ("apple", "a red apple"), "baboon.jpg": ("baboon", "the face of a mandrill"),
    "building.jpg": ("building", "an office building"), "butterfly.jpg": ("butterfly", "a butterfly on a leaf"),
    "chicky_512.png": ("chicky", "a small dog"), "ela_original.jpg": ("ela", "a notebook with a strap"),
    "fruits.jpg": ("fruits", "sliced citrus fruits"), "home.jpg": ("home", "a palace against a blue sky"),
    "leuvenA.jpg": ("leuven", "a cobbled street of brick houses"),
    "leuvenB.jpg": ("leuven", "a cobbled street of brick houses"),
    "messi5.jpg": ("messi", "a footballer kicking a ball"), "orange.jpg": ("orange", "an orange"),
    "rubberwhale1.png": ("rubberwhale", "toys on a shelf"), "rubberwhale2.png": ("rubberwhale", "toys on a shelf"),
    "squirrel_cls.jpg": ("squirrel", "a squirrel on a branch"),
}
MATE = {
    "Aqua.jpg": "a drop splashing into water", "Blinds.jpg": "a green leaf", "Dune.jpg": "dune grass by the sea",
    "FreshFlower.jpg": "an orange flower", "Garden.jpg": "a red flower in a garden", "GreenMeadow.jpg": "green grass",
    "LadyBird.jpg": "a ladybird on a blade of grass", "RainDrops.jpg": "raindrops on leaves",
    "Storm.jpg": "storm clouds over a road", "TwoWings.jpg": "a dandelion seed", "Wood.jpg": "pale wood grain",
    "YellowFlower.jpg": "a yellow flower",
}
LOMIRI = {
    "Bridge_by_Sander_Klootwijk.jpg": "bridge cables against the sky",
    "Dragonfly_by_Bolly.jpg": "a tree against a blue sky", "Picture_0B_by_freespace.jpg": "a fig in a red bowl",
    "Picture_1A_by_freespace.jpg": "paint brushes", "Wine_by_Jakkub_Mede.jpg": "a room with a wine bottle",
    "aitzgorri_by_Aitzol_Berasategi.jpg": "mountains above a meadow",
    "free_by_Peter_Nerlich.jpg": "a lamp with a flying insect",
    "friends_by_Aitzol_Berasategi.jpg": "two dogs at a door",
    "life_by_Aitzol_Berasategi.jpg": "a stream in a forest",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg": "a mountain path",
    "seeding_by_Clements_Engelhardt.jpg": "dandelions at dusk",
    "sunset_by_Aitzol_Berasategi.jpg": "a sunset over hills",
}


def _python_photos() -> list[SourcePhoto]:
    out = []
    import skimage

    sk = Path(skimage.__file__).parent / "data"
    for name, (group, subject) in SKIMAGE.items():
        out.append(SourcePhoto(f"skimage/{Path(name).stem}", sk / name, f"skimage/{group}", subject,
                               "scikit-image (PyPI)", "scikit-image sample data: public domain / CC0"))
    import sklearn.datasets

    sl = Path(sklearn.datasets.__file__).parent / "images"
    for name, subject in (("china.jpg", "a Chinese temple"), ("flower.jpg", "a pink flower")):
        out.append(SourcePhoto(f"sklearn/{Path(name).stem}", sl / name, f"sklearn/{name}", subject,
                               "scikit-learn (PyPI)", "scikit-learn sample images: CC BY 2.0"))
    import matplotlib

    mp = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    out.append(SourcePhoto("matplotlib/grace_hopper", mp, "matplotlib/grace_hopper", "a portrait of Grace Hopper",
                           "matplotlib (PyPI)", "public domain (U.S. Navy photograph)"))
    return out


def _debian_photos() -> list[SourcePhoto]:
    out = []
    for name, (group, subject) in OPENCV.items():
        out.append(SourcePhoto(f"opencv/{Path(name).stem}", OPENCV_DIR / name, f"opencv/{group}", subject,
                               "opencv-doc (Debian)", "OpenCV sample data: see /usr/share/doc/opencv-doc/copyright"))
    for name, subject in MATE.items():
        out.append(SourcePhoto(f"mate/{Path(name).stem}", MATE_DIR / name, f"mate/{name}", subject,
                               "mate-backgrounds (Debian)", "see /usr/share/doc/mate-backgrounds/copyright"))
    for name, subject in LOMIRI.items():
        out.append(SourcePhoto(f"lomiri/{Path(name).stem}", LOMIRI_DIR / name, f"lomiri/{name}", subject,
                               "lomiri-wallpapers-16.04 (Debian)", "CC BY / CC BY-SA: see its Debian copyright file"))
    return out


def discover_photos(extra_dirs: list[str | os.PathLike] = (), sources: str = "all") -> list[SourcePhoto]:
    """Every listed photo that is installed here (missing packages are simply absent),
    plus any photos in `extra_dirs` (each file its own group, subject 'a photograph').
    `sources="python"` keeps the photos that pip installs, so the set is the same on every machine."""
    if sources not in PHOTO_SOURCES:
        raise ValueError(f"photo sources {sources!r}: choose from {PHOTO_SOURCES}")
    listed = _python_photos() + (_debian_photos() if sources == "all" else [])
    photos = [p for p in listed if p.path.is_file()]
    for d in extra_dirs:
        for f in sorted(Path(d).glob("*")):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                photos.append(SourcePhoto(f"extra/{f.stem}", f, f"extra/{f.name}", "a photograph",
                                          str(d), "supplied by the user"))
    return photos


def photo_counts(photos: list[SourcePhoto], sources: str = "all") -> dict[str, int]:
    """Photos found per package, listing every package the `sources` choice reads (0: not installed)."""
    listed = _python_photos() + (_debian_photos() if sources == "all" else [])
    counts = {p.package: 0 for p in listed}
    for p in photos:
        counts[p.package] = counts.get(p.package, 0) + 1
    return counts


def photo_report(photos: list[SourcePhoto], sources: str = "all") -> str:
    """One line per package: how many photos it gave."""
    rows = [f"  {package:<36} {n:>3} photos" + ("  (not installed)" if n == 0 else "")
            for package, n in photo_counts(photos, sources).items()]
    return "\n".join([f"photo sources ({len(photos)} photos):", *rows])


class TooFewPhotos(RuntimeError):
    """The installed photo packages give fewer photos than the documented corpus needs."""


def check_photo_count(photos: list[SourcePhoto], allow_small: bool) -> None:
    """Stop below MIN_PHOTOS unless the caller chose the small corpus knowingly."""
    if len(photos) >= MIN_PHOTOS or allow_small:
        return
    missing = [p for p in DEBIAN_PACKAGES if not any(ph.package.startswith(p + " ") for ph in photos)]
    raise TooFewPhotos(
        f"only {len(photos)} source photos are installed (the documented corpus needs at least {MIN_PHOTOS}); "
        f"install the Debian photo packages: `apt-get install {' '.join(missing or DEBIAN_PACKAGES)}` "
        "(`make system` in a checkout), or pass --small-corpus to build the small corpus knowingly")
