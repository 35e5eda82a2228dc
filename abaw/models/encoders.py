"""Streams: a per-frame encoder (CNN) -> optional FC layers, giving one feature per frame; and the RNN they feed.

An image stream (face, body, context) runs a backbone on (B, T, 3, H, W) frames; the audio stream runs a 2-D CNN on
the log-mel window of each frame (B, T, 1, n_mels, W), standardised per window, with SpecAugment-style masking in
training. Either takes cached encoder features ``<stream>_feat`` (B, T, D) instead of raw input. A stream's feature is
zero where ``<stream>_valid`` (B, T) is False (no face crop, no audio).
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from abaw.errors import AbawError


class FCStack(nn.Sequential):
    """Linear -> ReLU -> Dropout per width; no widths is the identity."""

    def __init__(self, in_features: int, widths: tuple[int, ...] = (), dropout: float = 0.0):
        layers: list[nn.Module] = []
        prev = in_features
        for width in widths:
            layers += [nn.Linear(prev, width), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = width
        super().__init__(*layers)
        self.out_features = prev


class AudioEncoder(nn.Module):
    """Log-mel window (N, 1, n_mels, W) in dB -> (N, D): per-window standardisation, SpecAugment in training, CNN."""

    def __init__(self, backbone: nn.Module, freq_mask: int = 8, time_mask: int = 10):
        super().__init__()
        self.backbone = backbone
        self.num_features = backbone.num_features
        self.backbone_name = backbone.backbone_name
        # iid_masks: a different mask per window of the batch (torchaudio needs 4-D input for that).
        self.freq_mask = torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True) if freq_mask else None
        self.time_mask = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True) if time_mask else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.dim() == 3:  # (N, n_mels, W)
            x = x.unsqueeze(1)
        mean = x.mean(dim=(-2, -1), keepdim=True)
        var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
        x = (x - mean) * torch.rsqrt(var + 1e-5)  # an all-zero (missing) window stays zero
        if self.training:
            if self.freq_mask is not None:
                x = self.freq_mask(x)
            if self.time_mask is not None:
                x = self.time_mask(x)
        return self.backbone(x)


def _channels_last(module: nn.Module) -> bool:
    for p in module.parameters():
        if p.dim() == 4 and p.shape[-1] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


class Stream(nn.Module):
    """One input stream: ``encoder`` (per-frame CNN, ``.num_features``) -> [concat extra inputs] -> FC stack."""

    def __init__(self, name: str, encoder: nn.Module, fc: tuple[int, ...] = (), dropout: float = 0.0,
                 extras: dict[str, int] | None = None, freeze: bool = False, frame_dims: int = 3):
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.extras = dict(extras or {})
        self.frame_dims = frame_dims  # dims of one raw frame: 3 for (C, H, W)
        self.frozen = freeze
        if freeze:
            encoder.requires_grad_(False)
        self.proj = FCStack(encoder.num_features + sum(self.extras.values()), tuple(fc), dropout)
        self.out_features = self.proj.out_features

    @property
    def feature_dim(self) -> int:
        """Width of the encoder feature (what ``abaw extract`` caches)."""
        return int(self.encoder.num_features)

    def train(self, mode: bool = True) -> Stream:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # a frozen CNN keeps its BatchNorm statistics
        return self

    def encode_frames(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Raw frames (B, T, *frame) -> encoder features (B, T, D); frames where ``keep`` is False are zeros and
        are not run through the CNN (padding, missing crops)."""
        if self.name == "audio" and x.dim() == 4:
            x = x.unsqueeze(2)
        if x.dim() != 2 + self.frame_dims:
            raise AbawError(f"input {self.name!r} must have {2 + self.frame_dims} dims (B, T, C, H, W), "
                            f"got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        flat = x.flatten(0, 1)
        if _channels_last(self.encoder):
            flat = flat.contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            if keep is None or bool(keep.all()):
                return self.encoder(flat).reshape(b, t, -1)
            index = keep.flatten().nonzero().squeeze(1)
            if index.numel() == 0:
                return flat.new_zeros(b, t, self.feature_dim)
            feats = self.encoder(flat.index_select(0, index))
            out = feats.new_zeros(b * t, feats.shape[1]).index_copy(0, index, feats)
        return out.reshape(b, t, -1)

    def forward(self, inputs: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        valid = inputs.get(f"{self.name}_valid")
        valid = valid.to(device=mask.device, dtype=torch.bool) if valid is not None else None
        feat_key = f"{self.name}_feat"
        if feat_key in inputs:
            feats = inputs[feat_key]
            if feats.dim() != 3 or feats.shape[-1] != self.feature_dim:
                raise AbawError(f"cached features {feat_key!r} have shape {tuple(feats.shape)}; this model's "
                                f"{self.name} encoder gives (B, T, {self.feature_dim})")
            if feats.dtype in (torch.float16, torch.float64) or not feats.is_floating_point():
                feats = feats.float()  # the cache stores float16; autocast casts further where it applies
        elif self.name in inputs:
            keep = mask if valid is None else mask & valid
            feats = self.encode_frames(inputs[self.name], keep)
        else:
            raise AbawError(f"the model needs input {self.name!r} or {feat_key!r}; got {', '.join(inputs)}")
        parts = [feats]
        for key, dim in self.extras.items():
            if key not in inputs:
                raise AbawError(f"the model needs input {key!r} (B, T, {dim}): add the {key!r} stream")
            extra = inputs[key]
            if extra.shape[-1] != dim:
                raise AbawError(f"input {key!r} has {extra.shape[-1]} values per frame, the model expects {dim}")
            extra_valid = inputs.get(f"{key}_valid")
            if extra_valid is not None:
                extra = extra * extra_valid.unsqueeze(-1).to(extra.dtype)
            parts.append(extra.to(feats.dtype))
        out = self.proj(torch.cat(parts, dim=-1) if len(parts) > 1 else feats)
        if valid is not None:
            out = out * valid.unsqueeze(-1).to(out.dtype)
        return out


class SequenceRNN(nn.Module):
    """GRU or LSTM over (B, T, D); ``num_layers=0`` is the identity (a per-frame, CNN-only model).

    Padding is trailing (``mask`` True for real frames); a bidirectional RNN packs the sequences so padding never
    reaches the real frames' backward pass (a forward RNN never sees trailing padding before a real frame).
    """

    def __init__(self, input_size: int, cell_type: str = "gru", hidden_size: int = 128, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        self.bidirectional = bidirectional
        if num_layers <= 0:
            self.rnn = None
            self.out_features = input_size
            return
        cls = {"gru": nn.GRU, "lstm": nn.LSTM}[cell_type]
        self.rnn = cls(input_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
                       dropout=dropout if num_layers > 1 else 0.0)
        self.out_features = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.rnn is None:
            return x
        if self.bidirectional and mask is not None and not bool(mask.all()):
            t = x.shape[1]
            positions = torch.arange(1, t + 1, device=mask.device)
            lengths = (mask.long() * positions).amax(dim=1).clamp(min=1).cpu()  # last real frame + 1
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)
            return out
        out, _ = self.rnn(x)
        return out
