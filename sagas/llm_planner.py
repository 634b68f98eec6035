"""The LLM planner: asks the configured model, through litellm, for a structured plan.

litellm is imported on first use (it takes seconds and, unless told otherwise, tries to
fetch a cost map over the network at import). A timeout, connection error or 5xx is a
:class:`PlannerUnavailable` (the activity retries); an answer that is not a JSON plan
is a :class:`PlanInvalid` ``malformed`` (retrying the same prompt will not fix it).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from sagas.plan import PlanInvalid
from sagas.planner import PlannerUnavailable, PlanRequest

SYSTEM_PROMPT = """You are OmniHub's planner. Turn the user's goal into a plan that uses
only the tools listed. Answer with one JSON object and nothing else:
{"steps": [{"id": "s1", "tool": "<tool name>", "arguments": {...},
            "depends_on": ["<ids of earlier steps whose results it needs>"],
            "risk": <0..1, how harmful a mistake would be>,
            "compensation": "<the tool's compensation name>",
            "timeout_s": <seconds>, "max_attempts": <1..10>}]}
Steps without a dependency between them run in parallel. Refer to an earlier step's
result in arguments as "${<step id>.<field>}". Never invent tools."""

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class LiteLLMPlanner:
    """:class:`sagas.planner.Planner` on ``litellm.acompletion``.

    ``model`` is a litellm model name (``openai/<model>`` for any OpenAI-compatible
    server at ``api_base``).
    """

    name = "llm"

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.model = model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout_s = timeout_s

    async def warm_up(self) -> None:
        """Import litellm now (seconds), not inside the first activity."""
        _litellm()

    async def propose(self, request: PlanRequest) -> Mapping[str, Any]:
        litellm = _litellm()
        try:
            response = await litellm.acompletion(
                model=self.model,
                messages=messages_for(request),
                api_base=self._api_base,
                api_key=resolve_api_key(self.model, self._api_base, self._api_key, os.environ),
                timeout=self._timeout_s,
                temperature=0,
                response_format={"type": "json_object"},
                num_retries=0,  # Temporal retries the activity; retrying twice hides time
            )
        except litellm.exceptions.BadRequestError as exc:
            raise PlanInvalid("model_refused", str(exc)[:300]) from exc
        except Exception as exc:  # litellm maps every transport error to its own types
            raise PlannerUnavailable(f"{self.model}: {type(exc).__name__}: {exc}"[:500]) from exc
        return parse_plan_text(response.choices[0].message.content or "")


# The variables litellm reads for a provider's key when none is passed.
PROVIDER_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "azure": "AZURE_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
}


def resolve_api_key(
    model: str, api_base: str | None, api_key: str | None, environ: Mapping[str, str]
) -> str | None:
    """The key to pass litellm: ``OMNIHUB_LLM_API_KEY`` when set; else None, so litellm
    reads the provider's own variable (``OPENAI_API_KEY``...). Only a self-hosted
    OpenAI-compatible server (an ``api_base``) with no key anywhere gets a placeholder:
    the OpenAI client refuses to send without one, and such servers check nothing."""
    if api_key:
        return api_key
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    if api_base and not environ.get(PROVIDER_KEYS.get(provider, "OPENAI_API_KEY")):
        return "not-needed"
    return None


def messages_for(request: PlanRequest) -> list[dict[str, str]]:
    """The chat messages for ``request``: instructions, tools, then the goal."""
    tools = json.dumps(list(request.tools), indent=1)
    context = json.dumps(dict(request.context)) if request.context else "{}"
    return [
        {"role": "system", "content": f"{SYSTEM_PROMPT}\nTools:\n{tools}"},
        {"role": "user", "content": f"Goal: {request.goal}\nContext: {context}"},
    ]


def parse_plan_text(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer (code fences allowed), else ``malformed``."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PlanInvalid("malformed", f"the model's answer is not JSON: {body[:120]!r}") from exc
    if not isinstance(data, dict):
        raise PlanInvalid("malformed", "the model's answer is not a JSON object")
    return data


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    return litellm
