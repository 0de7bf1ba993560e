"""The documented model list of each route (from the upstream's API pages), and the check against it.

The upstream adds models faster than releases ship: `PROXY_EXTRA_MODELS` extends these lists and
`PROXY_ALLOW_ANY_MODEL=true` turns the check off.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

AICHAT_MODELS = frozenset(
    {
        "gpt-5.5",
        "gpt-5.5-pro",
        "gpt-5.4",
        "gpt-5.4-pro",
        "gpt-5.2",
        "gpt-5.1",
        "gpt-5.1-all",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-5-all",
        "gpt-4",
        "gpt-4-all",
        "gpt-4-turbo",
        "gpt-4-turbo-preview",
        "gpt-4-vision-preview",
        "gpt-4.1",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano",
        "gpt-4.1-nano-2025-04-14",
        "gpt-4.5-preview",
        "gpt-4.5-preview-2025-02-27",
        "gpt-4o",
        "gpt-4o-2024-05-13",
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-all",
        "gpt-4o-image",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-mini-search-preview",
        "gpt-4o-mini-search-preview-2025-03-11",
        "gpt-4o-search-preview",
        "gpt-4o-search-preview-2025-03-11",
        "o1",
        "o1-2024-12-17",
        "o1-all",
        "o1-mini",
        "o1-mini-2024-09-12",
        "o1-mini-all",
        "o1-preview",
        "o1-preview-2024-09-12",
        "o1-preview-all",
        "o1-pro",
        "o1-pro-2025-03-19",
        "o1-pro-all",
        "o3",
        "o3-2025-04-16",
        "o3-all",
        "o3-mini",
        "o3-mini-2025-01-31",
        "o3-mini-2025-01-31-high",
        "o3-mini-2025-01-31-low",
        "o3-mini-2025-01-31-medium",
        "o3-mini-all",
        "o3-mini-high",
        "o3-mini-high-all",
        "o3-mini-low",
        "o3-mini-medium",
        "o3-pro",
        "o3-pro-2025-06-10",
        "o4-mini",
        "o4-mini-2025-04-16",
        "o4-mini-all",
        "o4-mini-high-all",
        "deepseek-r1",
        "deepseek-r1-0528",
        "deepseek-v3",
        "deepseek-v3-250324",
        "deepseek-v4-flash",
        "grok-3",
        "glm-5.2",
        "glm-5.1",
        "glm-4.7",
        "glm-4.6",
        "glm-3-turbo",
    }
)

RESPONSES_MODELS = frozenset(
    {
        "gpt-5.6-luna",
        "gpt-5.6-sol",
        "gpt-5.6-terra",
        "gpt-5.5",
        "gpt-5.5-pro",
        "gpt-5.4-mini",
        "gpt-5.4-nano",
        "gpt-5.4",
        "gpt-5.4-pro",
        "gpt-5.1",
        "gpt-5.1-all",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-4",
        "gpt-4-all",
        "gpt-4-turbo",
        "gpt-4-turbo-preview",
        "gpt-4-vision-preview",
        "gpt-4.1",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano",
        "gpt-4.1-nano-2025-04-14",
        "gpt-4.5-preview",
        "gpt-4.5-preview-2025-02-27",
        "gpt-4o",
        "gpt-4o-2024-05-13",
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-all",
        "gpt-4o-image",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-mini-search-preview",
        "gpt-4o-mini-search-preview-2025-03-11",
        "gpt-4o-search-preview",
        "gpt-4o-search-preview-2025-03-11",
        "gpt-35-turbo-16k",
        "o1",
        "o1-2024-12-17",
        "o1-all",
        "o1-mini",
        "o1-mini-2024-09-12",
        "o1-mini-all",
        "o1-preview",
        "o1-preview-2024-09-12",
        "o1-preview-all",
        "o1-pro",
        "o1-pro-2025-03-19",
        "o1-pro-all",
        "o3",
        "o3-2025-04-16",
        "o3-all",
        "o3-mini",
        "o3-mini-2025-01-31",
        "o3-mini-2025-01-31-high",
        "o3-mini-2025-01-31-low",
        "o3-mini-2025-01-31-medium",
        "o3-mini-all",
        "o3-mini-high",
        "o3-mini-high-all",
        "o3-mini-low",
        "o3-mini-medium",
        "o3-pro",
        "o3-pro-2025-06-10",
        "o4-mini",
        "o4-mini-2025-04-16",
        "o4-mini-all",
        "o4-mini-high-all",
    }
)


# From AceData's API reference (its OpenAPI spec, docs/upstream-api.md has the sources)
CHAT_MODELS = frozenset(
    {
        "gpt-35-turbo-16k", "gpt-4", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4.1:free", "gpt-4o",
        "gpt-4o-2024-05-13", "gpt-4o-all", "gpt-4o-image", "gpt-4o-mini", "gpt-4o-mini:free", "gpt-4o:free",
        "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.1-all", "gpt-5.2", "gpt-5.4", "gpt-5.4-mini",
        "gpt-5.4-nano", "gpt-5.4-pro", "gpt-5.5", "gpt-5.5-pro", "gpt-5.5:free", "gpt-5.6-luna", "gpt-5.6-sol",
        "gpt-5.6-terra", "gpt-5:free", "gpt-oss:free", "o1", "o1-mini", "o1-pro", "o3", "o3-mini", "o3-pro",
        "o4-mini",
    }
)  # fmt: skip

CLAUDE_MODELS = frozenset(
    {
        "claude-3-5-haiku-20241022", "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022",
        "claude-3-7-sonnet-20250219", "claude-3-haiku-20240307", "claude-3-opus-20240229",
        "claude-3-sonnet-20240229", "claude-fable-5", "claude-haiku-4-5-20251001", "claude-opus-4-1-20250805",
        "claude-opus-4-20250514", "claude-opus-4-5-20251101", "claude-opus-4-6", "claude-opus-4-7",
        "claude-opus-4-8", "claude-opus-5", "claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929",
        "claude-sonnet-4-6", "claude-sonnet-5",
    }
)  # fmt: skip

# the other families AceData lists for its /v1/chat/completions (Gemini, Grok, Kimi, DeepSeek, GLM)
OTHER_V1_CHAT_MODELS = frozenset(
    {
        "deepseek-r1", "deepseek-r1-0528", "deepseek-v3", "deepseek-v3-250324", "deepseek-v3.2-exp",
        "deepseek-v4-flash", "gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-flash-preview",
        "gemini-3.0-pro", "gemini-3.1-pro", "gemini-3.1-pro-preview", "gemini-3.5-flash", "glm-3-turbo",
        "glm-4.5-air", "glm-4.6", "glm-4.7", "glm-5.1", "glm-5.2", "grok-2-vision", "grok-3", "grok-3-fast",
        "grok-3-mini", "grok-4", "grok-4-1-fast", "grok-4-1-fast-non-reasoning", "kimi-k2-0711-preview",
        "kimi-k2-0905-preview", "kimi-k2-instruct-0905", "kimi-k2-thinking", "kimi-k2-thinking-turbo",
        "kimi-k2-turbo-preview", "kimi-k2.5",
    }
)  # fmt: skip

V1_CHAT_MODELS = CHAT_MODELS | CLAUDE_MODELS | OTHER_V1_CHAT_MODELS

EMBEDDING_MODELS = frozenset({"text-embedding-3-large", "text-embedding-3-small", "text-embedding-ada-002"})

IMAGE_MODELS = frozenset(
    {
        "dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1.5", "gpt-image-2", "gpt-image-2:official",
        "gpt-image-2:reverse", "nano-banana", "nano-banana-2", "nano-banana-2-lite", "nano-banana-pro",
    }
)  # fmt: skip

# AceData's audio and image-edit guides (AceDataCloud/OpenAIAPI docs/openai_*_api_integration_guide.md)
SPEECH_MODELS = frozenset({"tts-1", "tts-1-hd"})
TRANSCRIPTION_MODELS = frozenset({"whisper-1", "gpt-transcribe"})
IMAGE_EDIT_MODELS = frozenset({"gpt-image-1", "dall-e-2"})

# AceData's Gemini guide (AceDataCloud/GeminiAPI docs/gemini_generate_content_api_integration_guide.md)
GEMINI_MODELS = frozenset(
    {
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "gemini-3-flash-preview",
        "gemini-3.1-pro",
        "gemini-2.0-flash",
    }
)


# models a route refuses but another route serves: the refusal says where (Claude on /openai/... → the /v1 base)
# (models, the route that serves them, how a client gets there): said to a client on any other route, the Messages
# routes included, so the advice names the SDK too
SERVED_ELSEWHERE = ((V1_CHAT_MODELS, "POST /v1/chat/completions", "an OpenAI SDK with the /v1 base URL"),)


class ModelCatalog:
    """Which model names a route accepts, and the refusal of one it does not; also the bounded label set for
    metrics."""

    def __init__(
        self,
        documented: Iterable[str],
        extra: Iterable[str] = (),
        allow_any: bool = False,
        patterns: Iterable[str] = (),
    ):
        """`patterns`: globs of further accepted names (PROXY_ANTHROPIC_MODELS: Claude Code sends model ids
        before any catalog lists them)."""
        self.known = frozenset(documented) | frozenset(extra)
        self.allow_any = allow_any
        self.patterns = tuple(patterns)

    def accepts(self, model: str) -> bool:
        return self.allow_any or model in self.known or self.matching(model) is not None

    def matching(self, model: str) -> str | None:
        """The first pattern `model` matches, or None."""
        return next((pattern for pattern in self.patterns if fnmatchcase(model, pattern)), None)

    def label(self, model: str | None) -> str:
        """A metric label value: a known model's name, else the pattern it matched, else `other`, so clients
        cannot mint series."""
        if model is None:
            return "other"
        if model in self.known:
            return model
        return self.matching(model) or "other"

    def refusal(self, model: str) -> str:
        """Why `model` is refused here: served by another route (which), or unknown (how to add it)."""
        shown = model if len(model) <= 80 else model[:80] + "..."
        for models, route, advice in SERVED_ELSEWHERE:
            if model in models:
                return f"The model '{shown}' is not served on this route; {route} serves it ({advice})."
        return (
            f"Unknown model '{shown}' for this route. Set PROXY_EXTRA_MODELS to add models the upstream "
            "has published since this release, or PROXY_ALLOW_ANY_MODEL=true."
        )
