"""Result types: plain Python objects copied out of the library's result structs (which are freed
right after), with maps as arrays (numpy when available, else shaped memoryviews)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from . import _arrays, _capi


class DenseTask(enum.IntEnum):
    """dmllm_dense_task."""
    SEMANTIC = 0
    FGBG = 1
    DEPTH = 2


class SemanticReadout(enum.IntEnum):
    """dmllm_semantic_readout: the classes a semantic readout argmaxes over."""
    ALL = 0     # every class of the prompt
    NAMED = 1   # the classes the model names first (report 9.2)


class StopReason(enum.IntEnum):
    """dmllm_stop_reason: why generation ended."""
    TOKEN = 0
    MAX_TOKENS = 1
    CALLBACK = 2
    CONTEXT_FULL = 3


def _text(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else raw.decode("utf-8", "replace")


def _names(pointer, n: int) -> List[str]:
    return [_text(pointer[k]) or "" for k in range(n)]


@dataclass
class DenseResult:
    """dmllm_dense_result. Maps are (height, width) at the original image size."""
    task: DenseTask
    width: int
    height: int
    n_labels: int
    labels: Any                      # uint16 (height, width); DEPTH: bin numbers
    confidence: Optional[Any]        # float32 (height, width) or None (evaluation mode only)
    depth_m: Optional[Any]           # DEPTH: float32 (height, width) metres
    depth_grid_bins: Optional[Any]   # DEPTH: uint16 (H//16, W//16), the official demo's grid
    tokens_w: int
    tokens_h: int
    n_scores: int
    token_scores: Optional[Any]      # float32 (tokens_h, tokens_w, n_scores) when kept
    reused_prefix: bool
    seconds_encode: float
    seconds_prefill: float
    seconds_readout: float
    seconds_crf: float               # the dense CRF (evaluation), included in seconds_readout
    # SEMANTIC: label value k is class_names[k] (then the background label in background mode)
    readout: SemanticReadout = SemanticReadout.ALL   # the readout that ran
    class_names: Optional[List[str]] = None          # NAMED: as printed, in the reply's order
    prompt_index: List[int] = field(default_factory=list)  # index into the prompt classes, -1: not in it
    named_fallback: bool = False     # NAMED: the reply named no class, so all prompt classes were read
    reply: Optional[str] = None      # NAMED: the generated category text
    seconds_generate: float = 0.0    # NAMED: generating the reply
    # What every label value 0 .. n_labels-1 stands for, so an overlay or legend needs no names
    # passed again: the classes (None for classes given as token ids), then "background" in
    # background mode; FGBG "background", "foreground"; DEPTH None (the labels are depth bins).
    label_names: Optional[List[Optional[str]]] = None
    background_label: Optional[int] = None  # the value meaning none of the classes, if any

    @property
    def open_vocabulary(self) -> List[str]:
        """Names the model printed that are not among the prompt's classes."""
        return [n for n, i in zip(self.class_names or [], self.prompt_index) if i < 0]

    @classmethod
    def _from_c(cls, r: _capi.DenseResult) -> "DenseResult":
        hw = (r.height, r.width)
        grid = (r.depth_grid_h, r.depth_grid_w)
        scores = (r.tokens_h, r.tokens_w, r.n_scores)
        return cls(
            task=DenseTask(r.task), width=r.width, height=r.height, n_labels=r.n_labels,
            labels=_arrays.copy_from(r.labels, "H", hw),
            confidence=_arrays.copy_from(r.confidence, "f", hw) if r.confidence else None,
            depth_m=_arrays.copy_from(r.depth_m, "f", hw) if r.depth_m else None,
            depth_grid_bins=_arrays.copy_from(r.depth_grid_bins, "H", grid) if r.depth_grid_bins else None,
            tokens_w=r.tokens_w, tokens_h=r.tokens_h, n_scores=r.n_scores,
            token_scores=_arrays.copy_from(r.token_scores, "f", scores) if r.token_scores else None,
            reused_prefix=bool(r.reused_prefix), seconds_encode=r.seconds_encode,
            seconds_prefill=r.seconds_prefill, seconds_readout=r.seconds_readout, seconds_crf=r.seconds_crf,
            readout=SemanticReadout(r.readout),
            class_names=[_text(r.class_names[k]) for k in range(r.n_classes)] if r.class_names else None,
            prompt_index=[r.prompt_index[k] for k in range(r.n_classes)] if r.prompt_index else [],
            named_fallback=bool(r.named_fallback), reply=_text(r.reply), seconds_generate=r.seconds_generate,
            label_names=[_text(r.label_names[k]) for k in range(r.n_labels)] if r.label_names else None,
            background_label=r.background_label if r.background_label >= 0 else None)


@dataclass
class GenerateResult:
    """dmllm_generate_result: the generated ids (int32, stop id excluded) and their text."""
    ids: Any
    text: Optional[str]              # None when the model has no tokenizer
    stop_reason: StopReason
    stop_id: int                     # -1 unless stopped by a stop id
    n_prompt: int
    seconds_prompt: float
    seconds_generate: float

    @classmethod
    def _from_c(cls, r: _capi.GenerateResult) -> "GenerateResult":
        return cls(ids=_arrays.copy_from(r.ids, "i", (r.n_ids,)), text=_text(r.text),
                   stop_reason=StopReason(r.stop_reason), stop_id=r.stop_id, n_prompt=r.n_prompt,
                   seconds_prompt=r.seconds_prompt, seconds_generate=r.seconds_generate)

    def __str__(self) -> str:
        return self.text or ""


@dataclass
class Region:
    """A box, or a polygon and its bounding box, of a grounding / detection answer."""
    label: str
    box: Tuple[int, int, int, int]                            # x0, y0, x1, y1
    points: List[Tuple[int, int]] = field(default_factory=list)  # polygon vertices; [] for a box


@dataclass
class Regions:
    """dmllm_regions: the parsed regions in text order, the answer text, and what was malformed."""
    regions: List[Region]
    text: Optional[str]
    message: str

    @classmethod
    def _from_c(cls, r: _capi.Regions) -> "Regions":
        regions = []
        for i in range(r.n_regions):
            c = r.regions[i].contents
            points = [(c.points[2 * k], c.points[2 * k + 1]) for k in range(c.n_points)]
            regions.append(Region(_text(c.label) or "", tuple(c.box), points))
        return cls(regions, _text(r.text), r.message.decode("utf-8", "replace"))

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self):
        return iter(self.regions)

    def __getitem__(self, i: int) -> Region:
        return self.regions[i]


@dataclass
class ReferResult:
    """dmllm_refer_result: mask uint8 (height, width), 1 on the referred object."""
    width: int
    height: int
    mask: Any
    found: bool
    box: Tuple[int, int, int, int]
    answer: Optional[str]
    message: str
    crf: bool                        # the dense CRF refined the mask
    label_names: List[str] = field(default_factory=list)  # of the mask values: "background", the phrase
    background_label: int = 0

    @property
    def labels(self) -> Any:
        """The mask as a label map (values index label_names), for write_overlay_png."""
        return self.mask

    @classmethod
    def _from_c(cls, r: _capi.ReferResult) -> "ReferResult":
        return cls(r.width, r.height, _arrays.copy_from(r.mask, "B", (r.height, r.width)), bool(r.found),
                   tuple(r.box), _text(r.answer), r.message.decode("utf-8", "replace"), bool(r.crf),
                   _names(r.label_names, r.n_labels))


@dataclass
class OpensetResult:
    """dmllm_openset_result: labels uint16 (height, width); 0 = background, k = names[k-1]."""
    width: int
    height: int
    labels: Any
    names: List[str]
    regions: Regions
    label_names: List[str] = field(default_factory=list)  # "background", then names
    background_label: int = 0

    @classmethod
    def _from_c(cls, r: _capi.OpensetResult) -> "OpensetResult":
        return cls(r.width, r.height, _arrays.copy_from(r.labels, "H", (r.height, r.width)),
                   _names(r.names, r.n_names), Regions._from_c(r.regions.contents),
                   _names(r.label_names, r.n_labels))


@dataclass
class MaskText:
    """dmllm_mask_text_result: the parsed map (uint16, (height, width)), <ref> names, <depth> tag."""
    labels: Any
    names: List[str]
    has_depth_tag: bool

    @classmethod
    def _from_c(cls, r: _capi.MaskTextResult) -> "MaskText":
        return cls(_arrays.copy_from(r.labels, "H", (r.height, r.width)), _names(r.names, r.n_names),
                   bool(r.has_depth_tag))
