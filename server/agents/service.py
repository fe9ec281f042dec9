"""AgentService servicer: protos in, agent domain calls, protos out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from google.api import httpbody_pb2
from google.protobuf import empty_pb2

from server.agents import conversations as conversation_fields
from server.agents import convert, generation
from server.agents import profiles as profile_fields
from server.agents.cancel_answer import AnswerCancels
from server.agents.catalog import ModelCatalog
from server.agents.chat import Chats, ChatTurn
from server.agents.chat_retries import AnswerReplay, ChatRetries, ChatRetry
from server.agents.conversations import Conversations
from server.agents.profiles import AgentProfiles
from server.agents.provider_key_rpcs import ProviderKeyRpcs
from server.agents.provider_key_use import ProviderKeyUse
from server.agents.provider_keys import ProviderKeys
from server.agents.provider_rpcs import ProviderRpcs
from server.agents.providers import Providers
from server.agents.runs.build import RunsParts
from server.agents.runs.control_rpcs import ControlRpcs
from server.agents.runs.read_rpcs import ReadRpcs
from server.agents.runs.tool_rpcs import ToolRpcs
from server.agents.usage import UsageLedger
from server.core.context import current_call
from server.core.errors import FieldViolation, ForgeError, InvalidArgument
from server.core.fieldmask import update_paths
from server.core.idempotency import fingerprint_of
from server.core.idempotent_calls import call_deadline, request_key
from server.core.pagination import PageTokens
from server.core.streaming import server_stream
from server.llm import ProviderRegistry

Context = grpc.aio.ServicerContext[Any, Any]


def _answer_failed() -> ForgeError:
    """What a client sees when an answer fails through a bug (INTERNAL, as before)."""
    return ForgeError("the answer failed", "INTERNAL")


class AgentService(
    ControlRpcs,
    ReadRpcs,
    ToolRpcs,
    ProviderRpcs,
    ProviderKeyRpcs,
    agents_pb2_grpc.AgentServiceServicer,
):
    """Runs' RPCs come from the mixins (server/agents/runs/*_rpcs.py); providers' and
    provider keys' from provider_rpcs.py and provider_key_rpcs.py."""

    def __init__(
        self,
        registry: ProviderRegistry,
        profiles: AgentProfiles,
        conversations: Conversations,
        chats: Chats,
        chat_retries: ChatRetries,
        ledger: UsageLedger,
        page_tokens: PageTokens,
        max_output_tokens: int,
        runs: RunsParts,
        provider_keys: ProviderKeys,
        key_use: ProviderKeyUse,
        models: ModelCatalog,
        providers: Providers,
        answer_cancels: AnswerCancels,
    ) -> None:
        self._answer_cancels = answer_cancels
        self._models = models
        self._providers = providers
        self._registry = registry
        self._provider_keys = provider_keys
        self._key_use = key_use
        self._profiles = profiles
        self._conversations = conversations
        self._chats = chats
        self._chat_retries = chat_retries
        self._ledger = ledger
        self._pages = page_tokens
        self._max_output_tokens = max_output_tokens
        # What the runs mixins read.
        self._run_starts = runs.starts
        self._run_control = runs.control
        self._run_reader = runs.reader
        self._run_watcher = runs.watcher
        self._tool_registry = runs.tools

    # --- models ----------------------------------------------------------------------

    async def ListModels(
        self, request: agents_pb2.ListModelsRequest, context: Context
    ) -> agents_pb2.ListModelsResponse:
        caller = current_call().require_caller()
        filters = {"provider": request.provider, "project_id": request.project_id}
        page = self._pages.page("models", request.page_size, request.page_token, filters)
        # The caller's own provider keys, and the project's (its members only).
        own_keys = await self._key_use.for_caller(caller, request.project_id)
        result = await self._models.list(request.provider, page, own_keys, refresh=request.refresh)
        return agents_pb2.ListModelsResponse(
            models=[convert.model_to_proto(m, self._max_output_tokens) for m in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    # --- agent profiles --------------------------------------------------------------

    async def ListAgents(
        self, request: agents_pb2.ListAgentsRequest, context: Context
    ) -> agents_pb2.ListAgentsResponse:
        caller = current_call().require_caller()
        page = self._pages.page(
            "agents", request.page_size, request.page_token, {"project_id": request.project_id}
        )
        result = await self._profiles.list(caller, request.project_id, page)
        return agents_pb2.ListAgentsResponse(
            agents=[convert.agent_to_proto(agent) for agent in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def GetAgent(
        self, request: agents_pb2.GetAgentRequest, context: Context
    ) -> agents_pb2.Agent:
        caller = current_call().require_caller()
        agent = await self._profiles.get(caller, request.project_id, request.agent_id)
        return convert.agent_to_proto(agent)

    async def CreateAgent(
        self, request: agents_pb2.CreateAgentRequest, context: Context
    ) -> agents_pb2.Agent:
        caller = current_call().require_caller()
        if not request.HasField("agent"):
            raise InvalidArgument.of([FieldViolation("agent", "is required")])
        agent = await self._profiles.create(
            caller, request.project_id, convert.agent_draft(request.agent)
        )
        return convert.agent_to_proto(agent)

    async def UpdateAgent(
        self, request: agents_pb2.UpdateAgentRequest, context: Context
    ) -> agents_pb2.Agent:
        caller = current_call().require_caller()
        if not request.HasField("agent"):
            raise InvalidArgument.of([FieldViolation("agent", "is required")])
        paths = update_paths(
            request.update_mask.paths, profile_fields.MUTABLE_FIELDS, request.agent
        )
        agent = await self._profiles.update(
            caller, request.project_id, request.agent.id, convert.agent_draft(request.agent), paths
        )
        return convert.agent_to_proto(agent)

    async def DeleteAgent(
        self, request: agents_pb2.DeleteAgentRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = current_call().require_caller()
        await self._profiles.delete(caller, request.project_id, request.agent_id)
        return empty_pb2.Empty()

    # --- conversations ---------------------------------------------------------------

    async def CreateConversation(
        self, request: agents_pb2.CreateConversationRequest, context: Context
    ) -> agents_pb2.Conversation:
        caller = current_call().require_caller()
        conversation = await self._conversations.create(
            caller, request.project_id, convert.conversation_draft(request.conversation)
        )
        return convert.conversation_to_proto(conversation)

    async def GetConversation(
        self, request: agents_pb2.GetConversationRequest, context: Context
    ) -> agents_pb2.Conversation:
        caller = current_call().require_caller()
        conversation = await self._conversations.get(caller, request.conversation_id)
        return convert.conversation_to_proto(conversation)

    async def ListConversations(
        self, request: agents_pb2.ListConversationsRequest, context: Context
    ) -> agents_pb2.ListConversationsResponse:
        caller = current_call().require_caller()
        filters = {"project_id": request.project_id, "agent_id": request.agent_id}
        page = self._pages.page("conversations", request.page_size, request.page_token, filters)
        result = await self._conversations.list(caller, request.project_id, request.agent_id, page)
        return agents_pb2.ListConversationsResponse(
            conversations=[convert.conversation_to_proto(c) for c in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def UpdateConversation(
        self, request: agents_pb2.UpdateConversationRequest, context: Context
    ) -> agents_pb2.Conversation:
        caller = current_call().require_caller()
        if not request.HasField("conversation"):
            raise InvalidArgument.of([FieldViolation("conversation", "is required")])
        paths = update_paths(
            request.update_mask.paths, conversation_fields.MUTABLE_FIELDS, request.conversation
        )
        conversation = await self._conversations.update(
            caller, request.conversation.id, convert.conversation_draft(request.conversation), paths
        )
        return convert.conversation_to_proto(conversation)

    async def DeleteConversation(
        self, request: agents_pb2.DeleteConversationRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = current_call().require_caller()
        await self._conversations.delete(caller, request.conversation_id)
        return empty_pb2.Empty()

    async def ListMessages(
        self, request: agents_pb2.ListMessagesRequest, context: Context
    ) -> agents_pb2.ListMessagesResponse:
        caller = current_call().require_caller()
        filters = {"conversation_id": request.conversation_id}
        page = self._pages.page("messages", request.page_size, request.page_token, filters)
        result = await self._conversations.messages(caller, request.conversation_id, page)
        return agents_pb2.ListMessagesResponse(
            messages=[convert.message_to_proto(message) for message in result.items],
            next_page_token=self._pages.next_token(page, result.next_key),
        )

    async def ExportConversation(
        self, request: agents_pb2.ExportConversationRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        caller = current_call().require_caller()
        document = await self._conversations.export(caller, request.conversation_id, request.format)
        # Through the gateway this header makes the answer a file download.
        await context.send_initial_metadata(
            (("content-disposition", f'attachment; filename="{document.filename}"'),)
        )
        return httpbody_pb2.HttpBody(content_type=document.content_type, data=document.data)

    # --- chat ------------------------------------------------------------------------

    async def Chat(
        self, request: agents_pb2.ChatRequest, context: Context
    ) -> AsyncIterator[agents_pb2.ChatEvent]:
        call = current_call()
        caller = call.require_caller()
        key = request_key(call.method, request)
        given = request.parameters
        params = generation.checked(
            given.temperature if given.HasField("temperature") else None,
            given.top_p if given.HasField("top_p") else None,
            given.max_output_tokens,
            list(given.stop_sequences),
            self._max_output_tokens,
        )
        turn: ChatTurn | AnswerReplay
        if key is None:
            turn = await self._chats.open(
                caller, request.conversation_id, request.content, request.model, params
            )
        else:
            retry = ChatRetry(key, fingerprint_of(request), call_deadline(context))
            turn = await self._chat_retries.open(
                caller, request.conversation_id, request.content, request.model, params, retry
            )
        # (grpc-stubs types the callback as a class, not a protocol, hence the ignore)
        context.add_done_callback(lambda _: turn.call_ended())  # type: ignore[arg-type]
        async with server_stream(
            turn.events(), convert.chat_event, convert.chat_error_event, lost=_answer_failed
        ) as events:
            async for event in events:
                yield event

    async def CancelAnswer(
        self, request: agents_pb2.CancelAnswerRequest, context: Context
    ) -> agents_pb2.Message:
        caller = current_call().require_caller()
        message = await self._answer_cancels.cancel(
            caller, request.conversation_id, request.message_id
        )
        return convert.message_to_proto(message)

    # --- usage -----------------------------------------------------------------------

    async def GetUsage(
        self, request: agents_pb2.GetUsageRequest, context: Context
    ) -> agents_pb2.Usage:
        caller = current_call().require_caller()
        report = await self._ledger.report(caller.user_id, request.start_day, request.end_day)
        return convert.usage_to_proto(report)
