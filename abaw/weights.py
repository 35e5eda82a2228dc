"""Catalogue of every model file abaw can use: where it comes from, its sha256 and licence, and how to get it.

``fetch(name)`` looks in the offline folder (``ABAW_WEIGHTS_DIR``), then the cache (``ABAW_CACHE_DIR`` or
``~/.cache/abaw/weights``), and otherwise downloads the file once with pooch (sha256-verified, streamed into a
temporary file beside the cache entry and renamed onto it), unless offline (``ABAW_OFFLINE=1`` or no network), in which
case a one-line :class:`AbawError` names the missing file, where it was looked for and the address to get it from.

Every local copy is checked against the catalogue's sha256 before it is returned, whatever its source (offline
folder, cache, download): a file with other bytes is refused with one line. Where the publisher gives only the start
of the sha256 (torchvision puts its first 8 hex digits in the file name, ``resnet50-0676ba61.pth``), ``sha256`` holds
that prefix and a file matches when its sha256 starts with it. A file opened by a library that may unpickle it
(``unpickled``: ultralytics' ``.pt``, loaded with ``weights_only=False``; HSEmotion's whole pickled models) can run
code when opened, so it is never opened unchecked: other bytes, no published sha256 or only a prefix of it, are
refused unless the user passes ``--trust-weights`` (``trust=True``); :func:`check_file` does the same for a path given
by the user. Hashes are computed once per process per file version (path, inode, size, mtime, ctime).

``layout`` says how a backbone file stores its weights; :mod:`abaw.models.convert` reads each layout into a state_dict
with abaw's key names, and :mod:`abaw.models.backbones` names the file each backbone starts from.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pooch

from abaw.errors import AbawError
from abaw.fileio import atomic_path

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "ABAW_WEIGHTS_DIR"
CACHE_DIR_ENV = "ABAW_CACHE_DIR"
OFFLINE_ENV = "ABAW_OFFLINE"
#: The command-line flag that lets a file with no known sha256 be opened by a library that may unpickle it.
TRUST_FLAG = "--trust-weights"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable model file."""

    name: str
    filename: str
    url: str
    #: The sha256, or the publisher's prefix of it (at least 8 hex digits); None: the publisher does not pin the file
    sha256: str | None
    licence: str
    note: str
    #: Other names the same bytes are known under (e.g. the file name in ``../shared/assets/weights``).
    aliases: tuple[str, ...] = field(default_factory=tuple)
    mirrors: tuple[str, ...] = field(default_factory=tuple)
    #: Opened by a library that may unpickle it (code can run when it is opened): never opened unverified.
    unpickled: bool = False
    #: The work to cite when using the file.
    citation: str = ""
    #: How a PyTorch backbone's weights are stored, i.e. which reader of abaw.models.convert turns the file into a
    #: state_dict: "state_dict" (torchvision), "places365" (CSAILVision checkpoint), "vgg_face_dag" (pytorch-mcn),
    #: "timm_pickle" (a whole pickled timm model, converted once); None: not a backbone (read by its own library).
    layout: str | None = None

    @property
    def filenames(self) -> tuple[str, ...]:
        return (self.filename, *self.aliases)

    @property
    def sha256_is_prefix(self) -> bool:
        return self.sha256 is not None and len(self.sha256) < 64

    def matches(self, sha256: str) -> bool:
        """Whether a file with this sha256 holds the catalogue's bytes (a prefix is matched as a prefix)."""
        return self.sha256 is not None and sha256.startswith(self.sha256)


_TORCHVISION = "https://download.pytorch.org/models/"
_MOBILENET_V2 = "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"
_RESNET = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_PLACES = ("Zhou et al., Places: A 10 million Image Database for Scene Recognition, IEEE TPAMI 2018 "
           "(github.com/CSAILVision/places365)")
_PLACES_URL = "http://places2.csail.mit.edu/models_places365/"
_HSEMOTION = ("Savchenko, Facial expression and attributes recognition based on multi-task learning of lightweight "
              "neural networks, SISY 2021; Savchenko, HSEmotion/EmotiEffLib (github.com/av-savchenko/"
              "face-emotion-recognition)")
_HSEMOTION_URL = "https://github.com/av-savchenko/face-emotion-recognition/raw/main/models/affectnet_emotions/"
_HSEMOTION_MIRROR = "https://github.com/HSE-asavchenko/face-emotion-recognition/raw/main/models/affectnet_emotions/"


def _hsemotion(name: str, arch: str, what: str) -> WeightFile:
    return WeightFile(
        f"hsemotion_{name}", f"{name}.pt", f"{_HSEMOTION_URL}{name}.pt", None, "Apache-2.0",
        f"HSEmotion {arch} face model ({what}; VGGFace2 then AffectNet, 8 expressions Anger, Contempt, Disgust, Fear, "
        "Happiness, Neutral, Sadness, Surprise; ImageNet mean/std): a whole pickled timm model, so it is opened once, "
        f"with {TRUST_FLAG}, by `abaw weights convert` into a weights_only-safe state_dict beside the cache",
        mirrors=(f"{_HSEMOTION_MIRROR}{name}.pt",), unpickled=True, citation=_HSEMOTION, layout="timm_pickle")


#: The backbone weights of the presets (torchvision ImageNet, VGG-Face, Places365) and the ABAW winners' face models.
_BACKBONE_FILES: tuple[WeightFile, ...] = (
    WeightFile("resnet18_imagenet", "resnet18-f37072fd.pth", f"{_TORCHVISION}resnet18-f37072fd.pth", "f37072fd",
               "BSD-3-Clause", "torchvision ResNet-18 ImageNet weights (ResNet18_Weights.IMAGENET1K_V1), a plain "
               "state_dict", citation=_RESNET, layout="state_dict"),
    WeightFile("resnet50_imagenet", "resnet50-0676ba61.pth", f"{_TORCHVISION}resnet50-0676ba61.pth", "0676ba61",
               "BSD-3-Clause", "torchvision ResNet-50 ImageNet weights (ResNet50_Weights.IMAGENET1K_V1), a plain "
               "state_dict", citation=_RESNET, layout="state_dict"),
    WeightFile("vgg_face_dag", "vgg_face_dag.pth",
               "https://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth", None,
               "VGG-Face: non-commercial research only",
               "VGG-Face (VGG-16 trained on 2.6M faces of 2,622 people) converted from MatConvNet by S. Albanie "
               "(pytorch-mcn), a state_dict with keys conv1_1 ... fc8 for 224x224 RGB in 0-255 less the mean; "
               "abaw renames the 13 conv layers and folds the input scaling into conv1_1 for [-1, 1] input",
               citation="Parkhi, Vedaldi, Zisserman, Deep Face Recognition, BMVC 2015", layout="vgg_face_dag"),
    WeightFile("resnet18_places365", "resnet18_places365.pth.tar", f"{_PLACES_URL}resnet18_places365.pth.tar", None,
               "MIT (CSAILVision/places365 code and models)",
               "ResNet-18 trained on Places365-Standard scenes, a checkpoint dict whose state_dict keys start with "
               "'module.' and end in a 365-class fc (dropped), read with weights_only=True", citation=_PLACES,
               layout="places365"),
    WeightFile("resnet50_places365", "resnet50_places365.pth.tar", f"{_PLACES_URL}resnet50_places365.pth.tar", None,
               "MIT (CSAILVision/places365 code and models)",
               "ResNet-50 trained on Places365-Standard scenes (NTUA-CVSP's context stream), a checkpoint dict "
               "whose state_dict keys start with 'module.' and end in a 365-class fc (dropped), read with "
               "weights_only=True", citation=_PLACES, layout="places365"),
    _hsemotion("enet_b0_8_best_vgaf", "EfficientNet-B0 (tf_efficientnet_b0, 224x224)", "best on VGAF"),
    _hsemotion("enet_b0_8_va_mtl", "EfficientNet-B0 (tf_efficientnet_b0, 224x224)",
               "multi-task: expressions, valence, arousal"),
    _hsemotion("enet_b2_8", "EfficientNet-B2 (tf_efficientnet_b2, 260x260)", "8 expressions"),
)

#: Every model file, by name (``abaw weights list`` prints it).
CATALOGUE: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            "yunet",
            "face_detection_yunet_2023mar.onnx",
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
            "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            "Apache-2.0",
            "YuNet face detector (boxes, 5 landmarks, score) for cv2.FaceDetectorYN",
            aliases=("yunet_s_640_640.onnx",),
            mirrors=("https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/master/onnx/"
                     "yunet_s_640_640.onnx",),
        ),
        WeightFile(
            "yolo_fastest_body_cfg",
            "yolo-fastest-1.1_body.cfg",
            "https://raw.githubusercontent.com/dog-qiuqiu/Yolo-Fastest/master/ModelZoo/yolo-fastest-1.1_body/"
            "yolo-fastest-1.1_body.cfg",
            "045b8e276ebe3924474da8c866b7e709159ea067137b5d66bf9dd560411b2c1a",
            "YOLO licence (public domain)",
            "Yolo-Fastest 1.1 one-class person detector, Darknet config (cv2.dnn.readNetFromDarknet)",
        ),
        WeightFile(
            "yolo_fastest_body_weights",
            "yolo-fastest-1.1_body.weights",
            "https://raw.githubusercontent.com/dog-qiuqiu/Yolo-Fastest/master/ModelZoo/yolo-fastest-1.1_body/"
            "yolo-fastest-1.1_body.weights",
            "5bbb6d878f6e2eb3deee39e91dc6f9b39700e99ec83fa94d258670a554949728",
            "YOLO licence (public domain)",
            "Yolo-Fastest 1.1 one-class person detector, Darknet weights (320x320 input)",
        ),
        WeightFile(
            "fer2013_mini_xception",
            "fer2013_mini_XCEPTION.102-0.66.hdf5",
            "https://github.com/oarriaga/face_classification/raw/master/trained_models/emotion_models/"
            "fer2013_mini_XCEPTION.102-0.66.hdf5",
            "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
            "MIT",
            "Keras mini-Xception FER2013 expression classifier (64x64 grey), read with h5py by abaw.models.fer",
        ),
        WeightFile(
            "mobilenet_v2_imagenet",
            "mobilenet_v2-b0353104.pth",
            "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            "BSD-3-Clause",
            "torchvision MobileNetV2 ImageNet weights (MobileNet_V2_Weights.IMAGENET1K_V1), a plain state_dict",
            citation=_MOBILENET_V2, layout="state_dict",
        ),
        *_BACKBONE_FILES,
        WeightFile(
            "yolov8n",
            "yolov8n.pt",
            "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n.pt",
            "f59b3d833e2ff32e194b5bb8e08d211dc7c5bdf144b90d2c8412c47ccfc83b36",
            "AGPL-3.0",
            "ultralytics YOLOv8n (COCO, person = class 0) for `--person ultralytics`; needs internet once; a pickle "
            "that ultralytics opens with weights_only=False, so only these bytes are opened (or --trust-weights)",
            unpickled=True,
        ),
    )
}


def names() -> list[str]:
    return list(CATALOGUE)


def get(name: str) -> WeightFile:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise AbawError(f"unknown weights {name!r}; known: {', '.join(CATALOGUE)}") from None


def weights_dir() -> Path | None:
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "abaw" / "weights"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


_HASHES: dict[tuple, str] = {}
_HASHES_LOCK = threading.Lock()


def sha256_of(path: str | Path) -> str:
    """The file's sha256, computed once per process per file version (path, inode, size, mtime, ctime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _HASHES_LOCK:
        known = _HASHES.get(key)
    if known is None:
        known = pooch.file_hash(str(path), alg="sha256")
        with _HASHES_LOCK:
            _HASHES[key] = known
    return known


def checked(name: str, path: str | Path, trust: bool = False) -> Path:
    """``path`` if it holds the catalogue's bytes of ``name``; otherwise a one-line :class:`AbawError` saying why
    and how to go on. ``trust`` (``--trust-weights``) lets an ``unpickled`` file with other or unpublished bytes
    through, with a warning; a file no library unpickles must match (it is the wrong file otherwise)."""
    entry, path = get(name), Path(path)
    refetch = f"delete it and run `abaw weights fetch {name}`"
    if entry.sha256 is None:
        if entry.unpickled and not trust:
            raise AbawError(f"not opened: {name} has no published sha256 and opening this file can run code; pass "
                            f"{TRUST_FLAG} if you trust it", path=path)
        return path
    actual = sha256_of(path)
    if entry.matches(actual) and not (entry.unpickled and entry.sha256_is_prefix):
        return path
    if entry.unpickled and trust:
        log.warning("%s: sha256 %s is not the catalogue's for %s; opened anyway (%s)", path, actual, name, TRUST_FLAG)
        return path
    if entry.unpickled:
        raise AbawError(f"not opened: sha256 {actual[:16]}... is not the catalogue's {entry.sha256[:16]}... for "
                        f"{name}, and opening this file can run code; {refetch}, or pass {TRUST_FLAG} if you trust it",
                        path=path)
    raise AbawError(f"not used: sha256 {actual[:16]}... is not the catalogue's {entry.sha256[:16]}... for {name} "
                    f"(a wrong or altered file); {refetch}", path=path)


def check_file(path: str | Path, trust: bool = False) -> Path:
    """A weights file given by path, to be opened by a library that may unpickle it: accepted when its sha256 is
    the one of an ``unpickled`` catalogue file, or when ``trust`` (``--trust-weights``); refused otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AbawError("weights file not found", path=path)
    if trust:
        return path
    actual = sha256_of(path)
    if any(e.unpickled and e.sha256 == actual for e in CATALOGUE.values()):  # a full sha256 only
        return path
    raise AbawError(f"not opened: no catalogue file has its sha256 ({actual[:16]}...) and opening it can run code; "
                    f"pass {TRUST_FLAG} if you trust it", path=path)


def locate(name: str) -> Path | None:
    """The local copy of ``name`` (offline folder first, then the cache), or None."""
    entry = get(name)
    folders = [d for d in (weights_dir(), cache_dir()) if d is not None]
    for folder in folders:
        for filename in entry.filenames:
            candidate = folder / filename
            if candidate.is_file():
                return candidate
    return None


def locate_file(filename: str) -> Path | None:
    """A file by name in the offline folder, then the cache (e.g. a converted state_dict), or None."""
    for folder in (d for d in (weights_dir(), cache_dir()) if d is not None):
        if (folder / filename).is_file():
            return folder / filename
    return None


def _where() -> str:
    places = [f"${WEIGHTS_DIR_ENV}={weights_dir()}" if weights_dir() else f"${WEIGHTS_DIR_ENV} (unset)"]
    places.append(str(cache_dir()))
    return ", ".join(places)


def fetch(name: str, timeout: float = 60.0, trust: bool = False) -> Path:
    """Path of the model file ``name``, downloading it into the cache the first time (unless offline); the file is
    checked against the catalogue's sha256 whatever its source (:func:`checked`; ``trust``: ``--trust-weights``)."""
    entry = get(name)
    found = locate(name)
    if found is not None:
        return checked(name, found, trust)
    how = how_to_get(entry)
    if offline():
        raise AbawError(f"weights file not found (offline, {OFFLINE_ENV}=1); looked in {_where()}; {how}",
                        path=entry.filename)
    errors = []
    for url in (entry.url, *entry.mirrors):
        try:
            return checked(name, _download(entry, url, cache_dir() / entry.filename, timeout), trust)
        except OSError as exc:  # requests' errors (pooch downloads with requests) are OSErrors too
            errors.append(f"{url}: {_why(exc)}")
    raise AbawError(f"weights file not found in {_where()} and the download failed ({'; '.join(errors)}); {how}",
                    path=entry.filename)


def how_to_get(entry: WeightFile) -> str:
    """Where to put a missing file: the offline folder when ``ABAW_WEIGHTS_DIR`` is set, else the cache."""
    if weights_dir() is not None:
        return f"download {entry.url} and put it in {weights_dir()} (${WEIGHTS_DIR_ENV}) as {entry.filename}"
    return (f"download {entry.url} into {cache_dir()}, or into a folder named by ${WEIGHTS_DIR_ENV}, as "
            f"{entry.filename}")


def _why(exc: OSError) -> str:
    """A failed download's cause without the connection pool's wrapping (requests -> urllib3 -> the real error)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return str(reason or exc)


def _download(entry: WeightFile, url: str, dest: Path, timeout: float) -> Path:
    """Download ``url`` to ``dest`` with pooch: into a temporary file beside ``dest``, checked against the entry's
    sha256, then renamed onto ``dest``; a file with other bytes is deleted, never kept."""
    log.info("downloading %s from %s", entry.filename, url)
    downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), chunk_size=1 << 20, timeout=timeout)
    full = entry.sha256 is not None and not entry.sha256_is_prefix
    known_hash = f"sha256:{entry.sha256}" if full else None
    # A prefix-only hash is checked here, after pooch's download into a name of its own, before the rename onto dest.
    fname = dest.name if full or entry.sha256 is None else f"{dest.name}.unverified"
    pooch_log = pooch.get_logger()  # its advice (e.g. "use this value as pooch.retrieve's known_hash") is not ours
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)
    try:
        path = Path(pooch.retrieve(url, known_hash, fname=fname, path=dest.parent, downloader=downloader))
    except ValueError as exc:  # pooch: other bytes than the published sha256 (already deleted), or a bad address
        raise AbawError(f"download from {url} not kept: {str(exc).split('. ')[0]}", path=entry.filename) from None
    finally:
        pooch_log.setLevel(level)
    if path.name != dest.name:
        actual = pooch.file_hash(str(path), alg="sha256")
        if not entry.matches(actual):
            path.unlink()
            raise AbawError(f"download from {url} not kept: sha256 {actual[:16]}... does not start with the "
                            f"publisher's {entry.sha256}", path=entry.filename)
        path = path.replace(dest)
    umask = os.umask(0)  # pooch's temporary file is private (0600): give it an ordinary file's permissions
    os.umask(umask)
    path.chmod(0o666 & ~umask)
    return path


def verify(name: str) -> tuple[bool, str]:
    """Check the local copy of ``name`` against its sha256: (ok, message). A missing file is not ok."""
    entry = get(name)
    path = locate(name)
    if path is None:
        return False, f"{name}: missing (looked in {_where()})"
    if entry.sha256 is None:
        return True, f"{name}: {path} present (no published sha256 to check)"
    actual = sha256_of(path)
    if not entry.matches(actual):
        return False, f"{name}: {path} sha256 {actual} does not match {entry.sha256}"
    return True, f"{name}: {path} ok" + (f" (sha256 starts with the published {entry.sha256})"
                                          if entry.sha256_is_prefix else "")


def install(name: str, source: str | Path) -> Path:
    """Copy a file the user obtained by hand into the cache after checking its sha256."""
    entry = get(name)
    source = Path(source)
    if entry.sha256 and not entry.matches(sha256_of(source)):
        raise AbawError(f"sha256 does not match the catalogue entry {name!r}", path=source)
    dest = cache_dir() / entry.filename
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    return dest
