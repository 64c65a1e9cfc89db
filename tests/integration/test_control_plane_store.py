"""The control-plane store on a real PostgreSQL: each change with its outbox row, the record as
the compacted topic holds it; concurrent PATCHes and key creations lose nothing; If-Match."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from pipeline.accounts import Account, new_account
from pipeline.controlplane import ControlPlane
from pipeline.db import async_pool, connect
from pipeline.endpoints import Endpoint, new_endpoint
from pipeline.exceptions import Conflict, DatabaseUnavailable, InvalidInput, StaleVersion
from pipeline.settings import Settings
from pipeline.topics import ACCOUNTS, ENDPOINTS

pytestmark = pytest.mark.postgres
T = TypeVar("T")


def run(settings: Settings, use: Callable[[ControlPlane], Awaitable[T]]) -> T:
    async def main() -> T:
        async with async_pool(settings) as pool:
            return await use(ControlPlane(pool))

    return asyncio.run(main())


def outbox(settings: Settings) -> list[tuple[str, str, bytes | None]]:
    with connect(settings) as conn:
        rows = conn.execute("SELECT topic, key, value FROM outbox ORDER BY id").fetchall()
    return [(t, k, bytes(v) if v is not None else None) for t, k, v in rows]


def an_endpoint(settings: Settings, account_id: str, **fields: Any) -> Endpoint:
    return new_endpoint(settings, account_id=account_id, url="http://127.0.0.1:9/hooks", **fields)


def test_every_change_queues_the_record_as_the_topic_holds_it(database_settings: Settings) -> None:
    account, _key = new_account("Trattoria")
    endpoint = an_endpoint(
        database_settings,
        account.id,
        event_types=["order.created"],
        headers={"X-Token": "t"},
        filter="data.total > 5",
        rate_limit=2.5,
    )

    async def use(store: ControlPlane) -> tuple[Any, ...]:
        await store.create_account(account)
        created = await store.create_endpoint(endpoint)
        read = await store.endpoint(endpoint.id)
        patched = await store.update_endpoint(endpoint.id, account.id, {"description": "d"})
        rotated = await store.rotate_secret(endpoint.id, account.id, 60)
        deleted = await store.delete_endpoint(endpoint.id, account.id)
        return created, read, patched, rotated, deleted

    created, read, patched, rotated, deleted = run(database_settings, use)
    assert read.endpoint == endpoint and (created.version, read.version) == (1, 1)
    assert patched.version == 2 and patched.endpoint.description == "d"
    assert rotated.version == 3 and rotated.endpoint.previous_secrets[0][0] == endpoint.secret
    assert deleted is True
    assert outbox(database_settings) == [
        (ACCOUNTS, account.id, account.to_json()),
        (ENDPOINTS, endpoint.id, endpoint.to_json()),  # byte for byte what EndpointWriter wrote
        (ENDPOINTS, endpoint.id, patched.endpoint.to_json()),
        (ENDPOINTS, endpoint.id, rotated.endpoint.to_json()),
        (ENDPOINTS, endpoint.id, None),
    ]


def test_a_stale_version_changes_nothing(database_settings: Settings) -> None:
    endpoint = an_endpoint(database_settings, "acct_1")

    async def use(store: ControlPlane) -> int:
        await store.create_endpoint(endpoint)
        await store.update_endpoint(endpoint.id, "acct_1", {"description": "a"}, if_version=1)
        with pytest.raises(StaleVersion) as stale:
            await store.update_endpoint(endpoint.id, "acct_1", {"description": "b"}, if_version=1)
        with pytest.raises(StaleVersion):
            await store.delete_endpoint(endpoint.id, "acct_1", if_version=1)
        assert await store.update_endpoint(endpoint.id, "acct_2", {"description": "c"}) is None
        current = await store.endpoint(endpoint.id)
        assert current is not None and current.endpoint.description == "a"
        return stale.value.current

    assert run(database_settings, use) == 2
    assert len(outbox(database_settings)) == 2  # the create and the one change that applied


def test_creating_an_endpoint_whose_id_exists_is_a_conflict_and_writes_nothing(
    database_settings: Settings,
) -> None:
    endpoint = an_endpoint(database_settings, "acct_1", description="first")
    again = an_endpoint(database_settings, "acct_2", description="second")
    again = Endpoint.from_json(again.to_json().replace(again.id.encode(), endpoint.id.encode()))

    async def use(store: ControlPlane) -> Any:
        await store.create_endpoint(endpoint)
        with pytest.raises(Conflict, match=endpoint.id):
            await store.create_endpoint(again)
        return await store.endpoint(endpoint.id)

    kept = run(database_settings, use)
    assert kept.endpoint == endpoint and kept.version == 1
    assert outbox(database_settings) == [(ENDPOINTS, endpoint.id, endpoint.to_json())]


def test_concurrent_patches_of_different_fields_both_survive(database_settings: Settings) -> None:
    endpoint = an_endpoint(database_settings, "acct_1")

    async def use(store: ControlPlane) -> list[Endpoint]:
        await store.create_endpoint(endpoint)
        kept = []
        for round_ in range(10):
            await asyncio.gather(
                store.update_endpoint(endpoint.id, "acct_1", {"description": f"r{round_}"}),
                store.update_endpoint(endpoint.id, "acct_1", {"rate_limit": round_ + 1.0}),
            )
            current = await store.endpoint(endpoint.id)
            assert current is not None
            kept.append(current.endpoint)
        return kept

    kept = run(database_settings, use)
    assert [(e.description, e.rate_limit) for e in kept] == [(f"r{i}", i + 1.0) for i in range(10)]


def test_keys_created_at_once_all_work(database_settings: Settings) -> None:
    account, first = new_account("Trattoria")

    async def use(store: ControlPlane) -> tuple[list[str], Account | None, list[Account | None]]:
        await store.create_account(account)
        added = await asyncio.gather(*(store.add_key(account.id) for _ in range(20)))
        keys = [plain for result in added if result is not None for _, plain in [result]]
        final = await store.account(account.id)
        return keys, final.account if final else None, [await store.authenticate(k) for k in keys]

    keys, final, owners = run(database_settings, use)
    assert len(keys) == 20 and final is not None and len(final.keys) == 21
    assert [o.id if o else None for o in owners] == [account.id] * 20
    # The last account record queued holds every key (the topic's copy lost none either).
    last = [v for t, _k, v in outbox(database_settings) if t == ACCOUNTS][-1]
    assert last is not None and len(Account.from_json(last).keys) == 21
    assert first not in keys


def test_an_unreachable_database_is_database_unavailable(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        database_url="postgresql://velourcity:velourcity@127.0.0.1:1/nowhere", database_timeout=0.5
    )

    async def use() -> None:
        pool = async_pool(settings)
        await pool.open(wait=False)  # as the API opens it
        try:
            with pytest.raises(DatabaseUnavailable, match="PostgreSQL is unavailable"):
                await ControlPlane(pool).authenticate("vk_anything")
        finally:
            await pool.close()

    asyncio.run(use())


def test_text_with_nul_is_refused_as_input_and_nothing_written(
    database_settings: Settings,
) -> None:
    endpoint = an_endpoint(database_settings, "acct_1", description="a\x00b")

    async def use(store: ControlPlane) -> None:
        with pytest.raises(InvalidInput, match="NUL"):
            await store.create_endpoint(endpoint)
        with pytest.raises(InvalidInput, match="NUL"):
            await store.endpoint("ep_\x00")

    run(database_settings, use)
    assert outbox(database_settings) == []
