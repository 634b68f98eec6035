"""Step tools: the registry and the built-in tools.

Add a tool by implementing :class:`sagas.tools.base.Tool` and registering it in the
worker's composition root (``apps.worker.build_registry``); no workflow change needed.
"""

from sagas.tools.base import (
    Tool,
    ToolCall,
    ToolDomainError,
    ToolError,
    ToolRegistry,
    ToolTransientError,
    UnknownTool,
)

__all__ = [
    "Tool",
    "ToolCall",
    "ToolDomainError",
    "ToolError",
    "ToolRegistry",
    "ToolTransientError",
    "UnknownTool",
]
