"""POST /aichat/conversations: AceData's aichat, answered as JSON, NDJSON or SSE as the client's accept asks."""

from app.models import AICHAT_MODELS
from app.routes.forward import RouteSpec
from app.schemas import AichatConversation

CONVERSATIONS = RouteSpec(
    name="aichat.conversations",
    paths=("/aichat/conversations",),
    upstream_path="/aichat/conversations",
    schema=AichatConversation,
    models=AICHAT_MODELS,
)
