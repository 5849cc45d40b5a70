"""Named pretrained pose models: direct URLs, checksums, published accuracy, cached downloads.

The official HRNet weights sit in Google Drive / OneDrive folders, which cannot be fetched by URL,
so the table points at mmpose's HRNet checkpoints on download.openmmlab.com (mmpose 0.x
``top_down/hrnet``, same architecture and state-dict names once ``backbone.`` /
``keypoint_head.`` are mapped, see :mod:`pose.checkpoint`). Those were trained by mmpose with the
paper recipe; their published AP is recorded next to the official README's.

Checksums follow the torch.hub convention: the 8 hex digits in the file name are the start of the
file's sha256 (mmpose's ``publish_model`` names files that way), and a download is kept only if
``sha256(file).startswith(prefix)``.

The cache is ``$POSE_CACHE`` or ``~/.cache/pose``; files land in ``<cache>/checkpoints/``. A download
is written to a temporary file beside its destination and renamed only once complete and verified,
so the cache never holds a partial or corrupt file. A cached file is verified again whenever its size
or modification time differs from the ones recorded at its last verification (a small stamp file
``.<name>.verified`` beside it), so a file truncated or replaced later is caught before it is loaded;
an unchanged file is not hashed again.

Why one module (a little over 400 lines): the table of named models and the one download/verify path they
all go through; most of the length is the table itself (pose and ImageNet entries).
"""
import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional, Tuple, Union

from pose.errors import CheckpointError, ConfigError, DataError, DownloadError
from pose.fileio import atomic_write, read_json, write_json

logger = logging.getLogger(__name__)

_MMPOSE = "https://download.openmmlab.com/mmpose/top_down/hrnet/"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZooModel:
    """One downloadable pose model.

    Attributes:
        name: zoo name, ``<arch>_<dataset>_<W>x<H>`` in the official file-name order (``HxW`` there).
        arch: ``MODEL.ARCH`` preset (``hrnet_w32``, ``hrnet_w48``).
        dataset: keypoint layout (``coco`` 17 joints, ``mpii`` 16).
        num_keypoints: K.
        input_size: network input ``(W, H)`` in pixels.
        config: the repository config that builds the matching model and codec.
        url: direct download URL.
        sha256_prefix: leading hex digits of the file's sha256 (from the file name).
        metric: what the scores measure (COCO val2017 AP with AP 56.4 detections and flip test, or
            MPII val PCKh@0.5 mean).
        score: the score published for this file (mmpose 0.x model zoo).
        official_score: the official HRNet README's score for the same arch/input (its own weights),
            None where it publishes none.
        official_file: the official release's file name for the same model (Google Drive/OneDrive).
        sigma: target Gaussian sigma it was trained with (heatmap pixels; official: 3 at 384x288, else 2).
        flip_test, decoder, shift_heatmap: the inference settings its published score used
            (``TEST.FLIP_TEST``, the decoder of ``TEST.POST_PROCESS``, ``TEST.SHIFT_HEATMAP``).
        convention: its pixel convention and targets: ``official`` (``size/2`` crops, MSRA targets).
    """

    name: str
    arch: str
    dataset: str
    num_keypoints: int
    input_size: Tuple[int, int]
    config: str
    url: str
    sha256_prefix: str
    metric: str
    score: float
    official_score: Optional[float]
    official_file: str
    sigma: float = 2.0
    flip_test: bool = True
    decoder: str = "quarter"
    shift_heatmap: bool = True
    convention: str = "official"

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_COCO_AP = "COCO val2017 AP (detections AP 56.4, flip test)"
_MPII_PCKH = "MPII val PCKh@0.5 mean (flip test)"


def _coco(arch: str, w: int, h: int, stem: str, sha: str, ap: float, official_ap: float) -> ZooModel:
    return ZooModel(name=f"{arch}_coco_{h}x{w}", arch=arch, dataset="coco", num_keypoints=17,
                    input_size=(w, h), config=f"configs/coco_{arch}_{h}x{w}.yaml",
                    url=f"{_MMPOSE}{stem}-{sha}_20200708.pth", sha256_prefix=sha, metric=_COCO_AP, score=ap,
                    official_score=official_ap, official_file=f"pose_coco/pose_{arch}_{h}x{w}.pth",
                    sigma=3.0 if h >= 384 else 2.0)


def _mpii(arch: str, sha: str, pckh: float, official_pckh: Optional[float]) -> ZooModel:
    return ZooModel(name=f"{arch}_mpii_256x256", arch=arch, dataset="mpii", num_keypoints=16,
                    input_size=(256, 256), config=f"configs/mpii_{arch}_256x256.yaml",
                    url=f"{_MMPOSE}{arch}_mpii_256x256-{sha}_20200812.pth", sha256_prefix=sha,
                    metric=_MPII_PCKH, score=pckh, official_score=official_pckh,
                    official_file=f"pose_mpii/pose_{arch}_256x256.pth")


# Scores: mmpose 0.x model zoo and official README (research notes data-and-weights.md 5,
# official-hrnet.md 6). Names read <arch>_<dataset>_<H>x<W> like the official files.
ZOO: Mapping[str, ZooModel] = MappingProxyType({m.name: m for m in (
    _coco("hrnet_w32", 192, 256, "hrnet_w32_coco_256x192", "c78dce93", 0.746, 0.744),
    _coco("hrnet_w32", 288, 384, "hrnet_w32_coco_384x288", "d9f0d786", 0.760, 0.758),
    _coco("hrnet_w48", 192, 256, "hrnet_w48_coco_256x192", "b9e0b3ab", 0.756, 0.751),
    _coco("hrnet_w48", 288, 384, "hrnet_w48_coco_384x288", "314c8528", 0.767, 0.763),
    _mpii("hrnet_w32", "6c4f923f", 0.900, 0.903),
    _mpii("hrnet_w48", "92cab7bd", 0.901, None),
)})


def list_models() -> Tuple[str, ...]:
    return tuple(sorted(ZOO))


def get_model_info(name: str) -> ZooModel:
    """The zoo entry called ``name``; ConfigError listing the names otherwise."""
    try:
        return ZOO[name]
    except KeyError:
        raise ConfigError(f"unknown model name '{name}'; expected a weights file path or one of "
                          f"{', '.join(list_models())}") from None


def default_cache_dir() -> Path:
    """``$POSE_CACHE`` or ``~/.cache/pose``."""
    return Path(os.environ.get("POSE_CACHE") or Path.home() / ".cache" / "pose")


def _how_to_get(url: str, dest: Path) -> str:
    return (f"download {url} yourself (e.g. curl -L -o {dest.name} '{url}') and pass it with --weights PATH, "
            f"or place it at {dest}")


def download(url: str, dest: Union[str, os.PathLike], expected_sha256_prefix: Optional[str], *,
             progress: bool = True, timeout: float = 30.0) -> Path:
    """Stream ``url`` to ``dest``, verifying the sha256 prefix; the file appears only when complete and valid.

    Args:
        url: http(s) URL.
        dest: final file path; its folder is created.
        expected_sha256_prefix: leading hex digits of the expected sha256 (None: no check).
        progress: show a tqdm progress bar on stderr.
        timeout: socket timeout in seconds for connecting and for each read.

    Raises:
        DownloadError: network failure, HTTP error, truncated transfer or checksum mismatch; nothing is
            left at ``dest`` or in its folder.
    """
    from tqdm import tqdm

    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cache folder '{dest.parent}' cannot be created ({e.strerror}); set POSE_CACHE "
                            "to a writable folder") from None
    sha = hashlib.sha256()
    with atomic_write(dest, "wb") as f:  # the file appears only when complete and verified
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "pose-zoo"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                received = 0
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                          disable=not progress, leave=False) as bar:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        sha.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as e:
            raise DownloadError(f"download of {url} failed (HTTP {e.code} {e.reason}); "
                                f"{_how_to_get(url, dest)}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:  # refused, DNS, timeout, reset, bad URL
            reason = getattr(e, "reason", None) or e
            raise DownloadError(f"download of {url} failed ({reason}); "
                                f"{_how_to_get(url, dest)}") from None
        except Exception as e:  # http.client.IncompleteRead and other protocol errors
            raise DownloadError(f"download of {url} failed ({type(e).__name__}: {e}); "
                                f"{_how_to_get(url, dest)}") from None
        if total is not None and received != total:
            raise DownloadError(f"download of {url} is truncated ({received} of {total} bytes); "
                                f"{_how_to_get(url, dest)}")
        digest = sha.hexdigest()
        if expected_sha256_prefix and not digest.startswith(expected_sha256_prefix.lower()):
            raise DownloadError(f"download of {url} has sha256 {digest[:16]}..., expected it to "
                                f"start with {expected_sha256_prefix}; the file was deleted (corrupt or "
                                "changed upstream)")
    logger.info("downloaded %s -> %s (sha256 %s...)", url, dest, digest[:12])
    _write_stamp(dest, digest)
    return dest


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _write_stamp(path: Path, digest: str) -> None:
    """Record the size and mtime at which ``path`` had sha256 ``digest`` (best effort: a read-only
    cache only means the file is hashed again next time)."""
    st = path.stat()
    try:
        write_json(_stamp_path(path), {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest})
    except OSError as e:
        logger.debug("cannot write %s (%s)", _stamp_path(path), e)


def _sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def verify_cached(path: Union[str, os.PathLike], expected_sha256_prefix: str) -> bool:
    """Whether the cached ``path`` still has the expected checksum.

    Hashes the file only when its size or mtime differs from the stamp of its last verification
    (or there is no stamp); a good file gets a fresh stamp.
    """
    path = Path(path)
    st = path.stat()
    try:
        stamp = read_json(_stamp_path(path))
    except (DataError, OSError):  # a missing or damaged stamp only means: hash the file again
        stamp = None
    prefix = expected_sha256_prefix.lower()
    if (isinstance(stamp, dict) and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns
            and str(stamp.get("sha256", "")).startswith(prefix)):
        return True
    digest = _sha256_of(path)
    if not digest.startswith(prefix):
        logger.warning("cached weights %s have sha256 %s..., expected it to start with %s (truncated or "
                       "replaced since the download)", path, digest[:16], prefix)
        return False
    _write_stamp(path, digest)
    return True


def _looks_like_path(text: str) -> bool:
    suffixes = (".pth", ".pt", ".ckpt", ".bin", ".tar")
    return os.sep in text or "/" in text or Path(text).suffix.lower() in suffixes


def resolve_weights(name_or_path: Union[str, os.PathLike], *,
                    cache_dir: Optional[Union[str, os.PathLike]] = None, offline: bool = False,
                    progress: bool = True, timeout: float = 30.0) -> Path:
    """A local weights file for a path or a zoo name (downloaded into the cache when missing).

    A path that exists is returned as is, without any network access. A zoo name is looked up in the
    cache and downloaded if absent (unless ``offline``).

    Raises:
        CheckpointError: a path that does not exist.
        ConfigError: neither an existing file nor a zoo name (the message lists the names).
        DownloadError: the download failed or ``offline`` is set and the file is not cached; the message
            gives the URL and says to pass the file with ``--weights PATH``.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if text not in ZOO:
        if path.exists():
            raise CheckpointError(f"weights '{path}' is not a file; expected a checkpoint file or a zoo name")
        if _looks_like_path(text):
            raise CheckpointError(f"weights file '{path}' does not exist; expected a checkpoint file or one "
                                  f"of the zoo names {', '.join(list_models())}")
        get_model_info(text)  # raises with the list of names
    info = ZOO[text]
    dest = Path(cache_dir or default_cache_dir()).expanduser() / "checkpoints" / info.filename
    if dest.is_file():
        if verify_cached(dest, info.sha256_prefix):
            logger.info("using cached weights %s", dest)
            return dest
        if offline:
            raise DownloadError(f"cached weights '{dest}' fail their checksum (sha256 should start with "
                                f"{info.sha256_prefix}: truncated or replaced) and offline mode is on; delete "
                                f"the file and run again online, or {_how_to_get(info.url, dest)}")
        logger.warning("deleting %s and downloading it again", dest)
        dest.unlink()
        _stamp_path(dest).unlink(missing_ok=True)
    if offline:
        raise DownloadError(f"weights '{text}' are not in the cache ({dest}) and offline mode is on; "
                            f"{_how_to_get(info.url, dest)}")
    logger.info("downloading %s (%s) to %s", text, info.url, dest)
    return download(info.url, dest, info.sha256_prefix, progress=progress, timeout=timeout)


# ---- ImageNet-pretrained trunks (MODEL.PRETRAINED) -------------------------------------------------

_HRNET_CLS_RELEASE = "https://github.com/HRNet/HRNet-Image-Classification/releases/download/PretrainedWeights/"
_MMPOSE_PRETRAIN = "https://download.openmmlab.com/mmpose/pretrain_models/"


@dataclass(frozen=True)
class ImageNetWeights:
    """One downloadable ImageNet classifier (official ``cls_hrnet`` layout) used to initialise a trunk.

    Attributes:
        name: zoo name, usable as ``MODEL.PRETRAINED``.
        arch: the classification preset it fits (``pose.models.CLS_HRNET_ARCHS``; W32/W48 are also the
            pose trunks).
        url: direct download URL.
        sha256_prefix: leading hex digits of the file's sha256 where a checksum is published, else None.
            None means: no published checksum; the loader checks instead that the file holds every
            tensor of the official classifier with the official shape, and logs the file's sha256.
        name_hash: the hex digits in the file name (torch.hub style) when there are some. The
            official pose repository named these files; nothing published says that the digits
            are a sha256 prefix, so they are logged next to the real sha256 and not enforced.
        top1_error: ImageNet val top-1 error (percent) published for this file.
        source: where the file and its number are published.
    """

    name: str
    arch: str
    url: str
    sha256_prefix: Optional[str]
    name_hash: Optional[str]
    top1_error: float
    source: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _release(name: str, arch: str, filename: str, top1_error: float, what: str) -> ImageNetWeights:
    return ImageNetWeights(name=name, arch=arch, url=_HRNET_CLS_RELEASE + filename, sha256_prefix=None,
                           name_hash=None, top1_error=top1_error,
                           source=f"HRNet/HRNet-Image-Classification release 'PretrainedWeights' ({what})")


def _mmpose_pretrain(name: str, arch: str, name_hash: str, top1_error: float) -> ImageNetWeights:
    return ImageNetWeights(name=name, arch=arch, url=f"{_MMPOSE_PRETRAIN}{arch}-{name_hash}.pth",
                           sha256_prefix=None, name_hash=name_hash, top1_error=top1_error,
                           source="the official pose repository's imagenet/ file (its MODEL.PRETRAINED), "
                                  "mirrored by mmpose")


# Errors: the official README tables (classification repository). W32/W48: the HRNet-W32-C / W48-C row.
IMAGENET_ZOO: Mapping[str, ImageNetWeights] = MappingProxyType({w.name: w for w in (
    _mmpose_pretrain("hrnet_w32_imagenet", "hrnet_w32", "36af842e", 21.5),
    _mmpose_pretrain("hrnet_w48_imagenet", "hrnet_w48", "8ef0771d", 20.7),
    _release("HRNet_W18_C_ssld", "hrnet_w18", "HRNet_W18_C_ssld_pretrained.pth", 18.8,
             "converted from PaddleClas SSLD"),
    _release("HRNet_W48_C_ssld", "hrnet_w48", "HRNet_W48_C_ssld_pretrained.pth", 16.4,
             "converted from PaddleClas SSLD"),
    _release("HRNet_W18_C_cosinelr_cutmix", "hrnet_w18", "HRNet_W18_C_cosinelr_cutmix_300epoch.pth.tar", 22.1,
             "CosineLR + CutMix, 300 epochs"),
    _release("HRNet_W48_C_cosinelr_cutmix", "hrnet_w48", "HRNet_W48_C_cosinelr_cutmix_300epoch.pth.tar", 18.9,
             "CosineLR + CutMix, 300 epochs"),
)})
# The classification repository's own names for the two pose trunks' initialisation.
IMAGENET_ALIASES: Mapping[str, str] = MappingProxyType({"HRNet_W32_C": "hrnet_w32_imagenet",
                                                        "HRNet_W48_C": "hrnet_w48_imagenet"})


def get_imagenet_info(name: str) -> Optional[ImageNetWeights]:
    """The ImageNet entry called ``name`` (or an alias), None when ``name`` is not one."""
    return IMAGENET_ZOO.get(IMAGENET_ALIASES.get(name, name))


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """Hex sha256 of a file, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def resolve_imagenet_weights(name: str, *, cache_dir: Optional[Union[str, os.PathLike]] = None,
                             offline: bool = False, progress: bool = True,
                             timeout: float = 30.0) -> Tuple[Path, ImageNetWeights]:
    """The cached file of an ImageNet entry (downloaded when missing) and its entry.

    Files without a published checksum are downloaded unverified; their sha256 is logged (and compared,
    for information, with the digits of the file name). The caller checks their completeness
    (``pose.weights.check_classifier_state_dict``) before using them.

    Raises:
        ConfigError: not an ImageNet zoo name (the message lists them).
        DownloadError: download failed, checksum mismatch, or ``offline`` and not cached.
    """
    info = get_imagenet_info(name)
    if info is None:
        names = sorted(IMAGENET_ZOO) + sorted(IMAGENET_ALIASES)
        raise ConfigError(f"unknown ImageNet weights '{name}'; expected a file path or one of {', '.join(names)}")
    dest = Path(cache_dir or default_cache_dir()).expanduser() / "checkpoints" / info.filename
    if not dest.is_file():
        if offline:
            raise DownloadError(f"ImageNet weights '{name}' are not in the cache ({dest}) and offline mode is "
                                f"on; {_how_to_get(info.url, dest)}")
        logger.info("downloading %s (%s) to %s", info.name, info.url, dest)
        download(info.url, dest, info.sha256_prefix, progress=progress, timeout=timeout)
        if info.sha256_prefix is None:
            digest = file_sha256(dest)
            hint = ""
            if info.name_hash:
                agrees = digest.startswith(info.name_hash)
                hint = f"; the name's digits {info.name_hash} {'match' if agrees else 'do NOT match'} it"
            logger.warning("%s has no published checksum: sha256 %s%s; its tensors are checked against the "
                           "official classifier before use", dest.name, digest, hint)
    return dest, info
