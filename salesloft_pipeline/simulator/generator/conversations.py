"""Conversation Intelligence: recorded conversations and their transcriptions.

About 30% of the connected calls made with the dialer (those with a call
data record) were recorded and analysed: each is one conversation (its
`call_id` is the call data record's id, as a string) with one
transcription, finished a few minutes after the call. Conversations and
transcriptions have string ids (UUIDs), and so do their references, even to
people and accounts; durations are milliseconds. Both streams need the
`conversations:read` scope (catalog.py). The record builders are shared
with activity.py, so live conversations look the same.
`ConversationsHistory` is the history's mixin; it draws from its own random
stream (`family_rng("conversations")`).
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from ..store import instant_us
from .common import API, MINUTE_US, SECOND_US, HistoryBase, uuid_from

RECORDED_SHARE = 0.3  # of connected calls with a call data record


def string_ref(path: str, record_id: Any) -> dict[str, Any]:
    """A reference as Conversation Intelligence writes them: the id is a string."""
    return {"id": str(record_id), "_href": f"{API}/{path}/{record_id}"}


def conversation_record(
    fmt, zone: str, conversation_id: str, transcription_id: str, recording_id: str, organization_id: str,
    call_started: int, call_ended: int, created: int, updated: int, title: str, user_guid: str,
    person_id: int, account_id: int | None, cdr_id: int,
) -> dict[str, Any]:
    duration_ms = (call_ended - call_started) // 1000
    return {
        "id": conversation_id,
        "title": title,
        "duration": duration_ms,
        "started_recording_at": call_started // 1000,
        "platform": "salesloft",
        "media_type": "audio",
        "language_code": "en-US",
        "is_api": False,
        "organization_id": organization_id,
        "owner_id": user_guid,
        "user_guid": user_guid,
        "event_start_date": fmt(call_started, zone),
        "event_end_date": fmt(call_ended, zone),
        "created_at": fmt(created, zone),
        "updated_at": fmt(updated, zone),
        "call_id": str(cdr_id),
        "person": string_ref("people", person_id),
        "account": None if account_id is None else string_ref("accounts", account_id),
        "recording": {"id": recording_id, "_href": f"{API}/conversations/{conversation_id}/recording"},
        "transcription": string_ref("transcriptions", transcription_id),
        "transcription_sentences": {"id": transcription_id, "_href": f"{API}/transcriptions/{transcription_id}/sentences"},
        "transcription_artifact": {"id": transcription_id, "_href": f"{API}/transcriptions/{transcription_id}/artifact"},
    }


def transcription_record(fmt, transcription_id: str, conversation_id: str, created: int, updated: int) -> dict[str, Any]:
    # Transcriptions come in UTC ("Z").
    return {
        "id": transcription_id,
        "language_code": "en-US",
        "created_at": fmt(created, "UTC"),
        "updated_at": fmt(updated, "UTC"),
        "conversation": string_ref("conversations", conversation_id),
        "transcription_sentences": {"id": transcription_id, "_href": f"{API}/transcriptions/{transcription_id}/sentences"},
        "transcription_artifact": {"id": transcription_id, "_href": f"{API}/transcriptions/{transcription_id}/artifact"},
    }


def processing_times(rng: random.Random, call_ended: int, end: int) -> tuple[int, int, int]:
    """When the conversation appears, when its transcription starts and when both are done."""
    created = min(end, call_ended + MINUTE_US + int(rng.random() * 4 * MINUTE_US))
    transcribing = min(end, created + 20 * SECOND_US + int(rng.random() * 2 * MINUTE_US))
    done = min(end, transcribing + 2 * MINUTE_US + int(rng.random() * 13 * MINUTE_US))
    return created, transcribing, done


class ConversationsHistory(HistoryBase):
    """Conversations and transcriptions, from the connected calls (after the other families)."""

    def conversations(self) -> None:
        rng = self.family_rng("conversations")
        fmt, end = self.fmt, self.end
        self.organization_id = uuid_from(rng)
        cdr_of = {}
        for blob in self.store.table("call_data_records").blobs.values():
            record = orjson.loads(blob)
            cdr_of[record["call"]["id"]] = record["id"]
        marker = b'"disposition":"Connected"'
        calls = [
            orjson.loads(blob) for call_id, blob in self.store.table("calls").blobs.items()
            if marker in blob and call_id in cdr_of
        ]
        calls.sort(key=lambda c: c["id"])
        chosen = [c for c in calls if rng.random() < RECORDED_SHARE]
        if not chosen and calls:
            chosen = calls[-1:]  # a small team still has one
        guid_of = dict(zip(self.user_ids, self.user_guids))
        zone_of = dict(zip(self.user_ids, self.user_zones))
        first_person = self.person_ids[0]
        conversations, transcriptions = [], []
        for call in chosen:
            ended = instant_us(call["created_at"])
            started = ended - (call["duration"] or 30) * SECOND_US - int(rng.random() * SECOND_US)
            created, transcribing, done = processing_times(rng, ended, end)
            user = call["user"]["id"]
            person_id = call["called_person"]["id"]
            p = person_id - first_person
            a = self.person_account[p]
            first, last = self.person_names[p]
            conversation_id, transcription_id, recording_id = uuid_from(rng), uuid_from(rng), uuid_from(rng)
            conversations.append(conversation_record(
                fmt, zone_of[user], conversation_id, transcription_id, recording_id, self.organization_id,
                started, ended, created, done, f"Call with {first} {last}", guid_of[user], person_id,
                self.account_ids[a] if a >= 0 else None, cdr_of[call["id"]],
            ))
            transcriptions.append(transcription_record(fmt, transcription_id, conversation_id, transcribing, done))
        self.store.load("conversations", conversations)
        self.store.load("transcriptions", transcriptions)
