"""The reference agent's HTTP layer over a fake pyrfc: protocol mapping, errors, sessions, the pool,
and what `sap-agent` says when pyrfc or the NW RFC SDK is missing."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from ml_connector.cli import main
from ml_connector.errors import ConfigError
from ml_connector.sap_agent.backend import SdkMissing, load_pyrfc
from ml_connector.sap_agent.config import AgentConfig, load_agent_config
from ml_connector.web.sap_agent import AgentApp

TOKEN = "a-long-agent-token-0123456789"
PASSWORD = "S3cret-RFC-pass"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


# -- a fake pyrfc: its exception classes by name, a Connection that records calls ---------------------

class RFCError(Exception):
    def __init__(self, message: str = "", key: str = "", msg_class: str = "", msg_type: str = "",
                 msg_number: str = "", msg_v1: str = "", msg_v2: str = "") -> None:
        super().__init__(message)
        self.message, self.key = message, key
        self.msg_class, self.msg_type, self.msg_number = msg_class, msg_type, msg_number
        self.msg_v1, self.msg_v2, self.msg_v3, self.msg_v4 = msg_v1, msg_v2, "", ""


class ABAPApplicationError(RFCError):
    pass


class ABAPRuntimeError(RFCError):
    pass


class LogonError(RFCError):
    pass


class CommunicationError(RFCError):
    pass


class ExternalRuntimeError(RFCError):
    pass


_ids = itertools.count(1)


class FakeConnection:
    """pyrfc.Connection's surface the agent uses: call(), get_connection_attributes(), close()."""

    def __init__(self, script: dict[str, Any]) -> None:
        self.id = next(_ids)
        self.script = script
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        self.pending: list[str] = []

    def call(self, function: str, **params: Any) -> dict[str, Any]:
        self.calls.append((function, params))
        answer = self.script.get(function)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            result: dict[str, Any] = answer(self, params)
            return result
        if answer is None:
            raise ABAPApplicationError(f"Function module {function} not found", key="FU_NOT_FOUND")
        return dict(answer)

    def get_connection_attributes(self) -> dict[str, str]:
        return {"client": "100", "user": "MLC_RFC", "sysId": "ECD"}

    def close(self) -> None:
        self.closed = True


class Rig:
    def __init__(self, **config: Any) -> None:
        raw = {"token": TOKEN, "pool": {"size": 2, "acquire_timeout": 0},
               "sap": {"ashost": "sapecd01", "sysnr": "00", "client": "100", "user": "MLC_RFC", "passwd": PASSWORD},
               "codepage": "4110", "allowed_functions": ["RFC_READ_TABLE", "RFC_SYSTEM_INFO", "BAPI_PO_GETDETAIL1",
                                                         "Z_MLC_DELIVERY_STATUS", "BAPI_TRANSACTION_COMMIT"]}
        raw.update(config)
        self.config = AgentConfig.model_validate(raw)
        self.script: dict[str, Any] = {"RFC_SYSTEM_INFO": {"RFCSI_EXPORT": {
            "RFCSYSID": "ECD", "RFCSAPRL": "731", "RFCHOST": "sapecd01", "RFCCHARTYP": "4103", "RFCKERNRL": "753",
            "RFCTZONE": "  3600"}}}
        self.connections: list[FakeConnection] = []
        self.clock = 0.0
        self.agent = AgentApp(self.config, self.connect, monotonic=lambda: self.clock)

    def connect(self) -> FakeConnection:
        made = FakeConnection(self.script)
        self.connections.append(made)
        return made


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    made = Rig()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(made.agent.create_app()),
                                 base_url="http://agent.test") as http:
        yield made, http


async def call(http: httpx.AsyncClient, function: str, path: str = "/rfc/v1/call", **body: Any) -> httpx.Response:
    return await http.post(path, json={"function": function, **body}, headers=HEADERS)


# -- the protocol ---------------------------------------------------------------------------------------

async def test_a_call_maps_imports_tables_exports_and_return(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig
    made.script["BAPI_PO_GETDETAIL1"] = {
        "POHEADER": {"PO_NUMBER": "4500000001", "CREAT_DATE": date(2024, 3, 2), "DOC_TYPE": "NB  "},
        "POITEM": [{"PO_ITEM": "00010", "NET_PRICE": Decimal("1250.50"), "QUANTITY": Decimal("2.000")}],
        "RETURN": [{"TYPE": "W", "ID": "ME", "NUMBER": "080", "MESSAGE": "warning"}]}
    response = await call(http, "bapi_po_getdetail1", imports={"PURCHASEORDER": "4500000001"},
                          tables={"POITEM": []})
    assert response.status_code == 200 and response.headers["x-mlc-rfc-protocol"] == "1"
    body = response.json()
    assert body["exports"]["POHEADER"] == {"PO_NUMBER": "4500000001", "CREAT_DATE": "20240302", "DOC_TYPE": "NB"}
    assert body["tables"]["POITEM"] == [{"PO_ITEM": "00010", "NET_PRICE": "1250.50", "QUANTITY": "2.000"}]
    assert body["return"] == [{"TYPE": "W", "ID": "ME", "NUMBER": "080", "MESSAGE": "warning"}]
    [(function, params)] = made.connections[0].calls
    assert function == "BAPI_PO_GETDETAIL1" and params == {"PURCHASEORDER": "4500000001", "POITEM": []}


async def test_a_structure_return_is_a_list_and_a_blank_one_empty(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig
    made.script["BAPI_TRANSACTION_COMMIT"] = {"RETURN": {"TYPE": "", "ID": "", "NUMBER": "", "MESSAGE": ""}}
    body = (await call(http, "BAPI_TRANSACTION_COMMIT", imports={"WAIT": "X"})).json()
    assert body["return"] == [] and body["exports"]["RETURN"]["TYPE"] == ""
    error = {"TYPE": "E", "ID": "F2", "NUMBER": "163", "MESSAGE": "Vendor 0000999999 does not exist"}
    made.script["BAPI_TRANSACTION_COMMIT"] = {"RETURN": error}
    body = (await call(http, "BAPI_TRANSACTION_COMMIT", imports={"WAIT": "X"})).json()
    assert body["return"] == [error]


@pytest.mark.parametrize(("raised", "status", "error_type"), [
    (LogonError("Name or password is incorrect (repeat logon)", key="RFC_LOGON_FAILURE"), 502, "RFC_LOGON_FAILURE"),
    (CommunicationError("partner 'sapecd01:3300' not reached", key="RFC_COMMUNICATION_FAILURE"), 503,
     "RFC_COMMUNICATION_FAILURE"),
    (CommunicationError("max no of 100 conversations exceeded", key="RFC_COMMUNICATION_FAILURE"), 503,
     "RESOURCE_FAILURE"),
    (ABAPRuntimeError("Message E 00 001 raised by the function", key="RFC_ABAP_MESSAGE"), 503, "SYSTEM_FAILURE"),
    (ABAPRuntimeError("Runtime error TIME_OUT", key="RFC_ABAP_RUNTIME_FAILURE"), 502, "ABAP_RUNTIME_FAILURE"),
    (ABAPRuntimeError("no free work process (RESOURCE_FAILURE)", key="RFC_ABAP_RUNTIME_FAILURE"), 503,
     "RESOURCE_FAILURE"),
    (ExternalRuntimeError("field 'ROWCOUNT' conversion", key="RFC_CONVERSION_FAILURE"), 400, "BAD_REQUEST"),
    (ExternalRuntimeError("connection closed", key="RFC_CLOSED"), 503, "RFC_COMMUNICATION_FAILURE"),
])
async def test_pyrfc_exceptions_become_protocol_errors(rig: tuple[Rig, httpx.AsyncClient], raised: Exception,
                                                       status: int, error_type: str) -> None:
    made, http = rig
    made.script["RFC_READ_TABLE"] = raised
    response = await call(http, "RFC_READ_TABLE", imports={"QUERY_TABLE": "EKKO"})
    assert response.status_code == status and response.json()["error"]["type"] == error_type
    assert PASSWORD not in response.text


async def test_a_function_exception_keeps_its_key_and_message(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig
    made.script["RFC_READ_TABLE"] = ABAPApplicationError("Data buffer exceeded", key="DATA_BUFFER_EXCEEDED",
                                                         msg_class="AD", msg_type="E", msg_number="559",
                                                         msg_v1="LFA1", msg_v2="512")
    response = await call(http, "RFC_READ_TABLE", imports={"QUERY_TABLE": "LFA1"})
    assert response.status_code == 422
    assert response.json()["error"] == {"type": "ABAP_APPLICATION_ERROR", "key": "DATA_BUFFER_EXCEEDED",
                                         "message": "Data buffer exceeded", "message_class": "AD",
                                         "message_type": "E", "message_number": "559", "message_v1": "LFA1",
                                         "message_v2": "512"}
    assert not made.connections[0].closed  # a function exception leaves the connection usable


async def test_a_broken_connection_is_closed_not_reused(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig
    made.script["RFC_READ_TABLE"] = CommunicationError("connection reset", key="RFC_COMMUNICATION_FAILURE")
    await call(http, "RFC_READ_TABLE")
    assert made.connections[0].closed
    await call(http, "RFC_SYSTEM_INFO")
    assert len(made.connections) == 2


# -- authentication and the function list ------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
async def test_a_missing_or_wrong_token_reaches_nothing(rig: tuple[Rig, httpx.AsyncClient], header: str | None) -> None:
    made, http = rig
    headers = {"Authorization": header} if header else {}
    for method, path in (("GET", "/rfc/v1/info"), ("POST", "/rfc/v1/call"), ("POST", "/rfc/v1/sessions")):
        response = await http.request(method, path, json={"function": "RFC_SYSTEM_INFO"}, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["type"] == "AGENT_UNAUTHORIZED"
    assert made.connections == []


async def test_only_allowed_functions_are_called(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig
    response = await call(http, "SUSR_USER_CHANGE_PASSWORD_RFC")
    assert response.status_code == 403 and response.json()["error"]["type"] == "FUNCTION_NOT_ALLOWED"
    assert made.connections == []


async def test_a_malformed_request_is_bad_request(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    _, http = rig
    for body in (b"not json", b'{"imports": {}}', b'{"function": "RFC_READ_TABLE", "tables": {"OPTIONS": "x"}}'):
        response = await http.post("/rfc/v1/call", content=body, headers=HEADERS)
        assert response.status_code == 400 and response.json()["error"]["type"] == "BAD_REQUEST"


async def test_info_shows_the_system_and_never_the_password(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    _, http = rig
    response = await http.get("/rfc/v1/info", headers=HEADERS)
    system = response.json()["system"]
    assert system == {"sid": "ECD", "release": "731", "client": "100", "user": "MLC_RFC", "host": "sapecd01",
                      "codepage": "4103", "kernel": "753", "timezone_offset": "3600"}
    assert PASSWORD not in response.text


def test_codepage_and_connection_parameters_pass_through() -> None:
    config = Rig().config
    assert config.connection_params() == {"ashost": "sapecd01", "sysnr": "00", "client": "100", "user": "MLC_RFC",
                                          "passwd": PASSWORD, "codepage": "4110"}
    assert "passwd" not in config.shown() and PASSWORD not in repr(config)


# -- sessions and the pool ---------------------------------------------------------------------------------

async def test_a_session_keeps_one_connection_for_the_bapi_and_its_commit(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig

    def write(conn: FakeConnection, params: dict[str, Any]) -> dict[str, Any]:
        conn.pending.append(params["NOTIFICATION_ID"])
        return {"RETURN": [{"TYPE": "S", "ID": "ZMLC", "NUMBER": "000", "MESSAGE": "recorded"}]}

    made.script["Z_MLC_DELIVERY_STATUS"] = write
    made.script["BAPI_TRANSACTION_COMMIT"] = lambda conn, params: {"RETURN": {"TYPE": "", "MESSAGE": ""}}
    opened = await http.post("/rfc/v1/sessions", headers=HEADERS)
    assert opened.status_code == 201
    session = opened.json()["session"]
    await call(http, "Z_MLC_DELIVERY_STATUS", f"/rfc/v1/sessions/{session}/call", imports={"NOTIFICATION_ID": "42"})
    await call(http, "RFC_SYSTEM_INFO")  # a stateless call meanwhile gets another connection
    await call(http, "BAPI_TRANSACTION_COMMIT", f"/rfc/v1/sessions/{session}/call", imports={"WAIT": "X"})
    first = made.connections[0]
    assert [c[0] for c in first.calls] == ["Z_MLC_DELIVERY_STATUS", "BAPI_TRANSACTION_COMMIT"]
    assert (await http.delete(f"/rfc/v1/sessions/{session}", headers=HEADERS)).status_code == 204
    assert first.closed  # nobody inherits its user context
    gone = await call(http, "RFC_SYSTEM_INFO", f"/rfc/v1/sessions/{session}/call")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "SESSION_NOT_FOUND"


async def test_an_idle_session_expires_and_rolls_back(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig
    session = (await http.post("/rfc/v1/sessions", headers=HEADERS)).json()["session"]
    made.clock += made.config.session_idle_timeout + 1
    response = await call(http, "RFC_SYSTEM_INFO", f"/rfc/v1/sessions/{session}/call")
    assert response.status_code == 404 and made.connections[0].closed


async def test_the_pool_is_the_agents_cap(rig: tuple[Rig, httpx.AsyncClient]) -> None:
    made, http = rig
    sessions = [(await http.post("/rfc/v1/sessions", headers=HEADERS)).json()["session"] for _ in range(2)]
    busy = await call(http, "RFC_SYSTEM_INFO")
    assert busy.status_code == 503 and busy.json()["error"]["type"] == "RESOURCE_FAILURE"
    assert "busy" in busy.json()["error"]["message"] and len(made.connections) == 2
    await http.delete(f"/rfc/v1/sessions/{sessions[0]}", headers=HEADERS)
    assert (await call(http, "RFC_SYSTEM_INFO")).status_code == 200


# -- configuration and the missing SDK ---------------------------------------------------------------------

def test_the_agent_config_needs_a_way_to_authenticate(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("sap: {ashost: sapecd01, passwd: x}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="token, or tls.client_ca"):
        load_agent_config(path, env={})
    path.write_text("token: ${AGENT_TOKEN}\nsap: {ashost: sapecd01, sysnr: 00}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="AGENT_TOKEN is not set"):
        load_agent_config(path, env={})
    config = load_agent_config(path, env={"AGENT_TOKEN": TOKEN})
    assert config.connection_params()["sysnr"] == "00"  # YAML's number 0 gets its zero back


def test_a_missing_pyrfc_says_what_to_install() -> None:
    def no_module(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    with pytest.raises(SdkMissing, match="needs pyrfc, which is not installed.*NW RFC SDK.*pip install pyrfc"):
        load_pyrfc(no_module)


def test_a_missing_sdk_library_says_so() -> None:
    def no_library(name: str) -> Any:
        raise ImportError("libsapnwrfc.so: cannot open shared object file: No such file or directory")

    with pytest.raises(SdkMissing, match="cannot load SAP's NW RFC SDK libraries.*libsapnwrfc.so.*LD_LIBRARY_PATH"):
        load_pyrfc(no_library)


def test_the_command_says_what_is_missing(tmp_path: Path) -> None:
    try:
        load_pyrfc()
    except SdkMissing:
        pass
    else:
        pytest.skip("pyrfc and the SDK are installed here")
    path = tmp_path / "agent.yaml"
    path.write_text(f"token: {TOKEN}\nsap: {{ashost: sapecd01, sysnr: '00', passwd: {PASSWORD}}}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["sap-agent", "--agent-config", str(path)])
    assert result.exit_code == 1
    assert "sap-agent: the SAP agent needs pyrfc" in result.output and "NW RFC SDK" in result.output
    assert PASSWORD not in result.output


def test_the_example_agent_file_validates() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "sap-agent.yaml"
    config = load_agent_config(example, env={"MLC_SAP_AGENT_TOKEN": TOKEN, "SAP_RFC_PASSWORD": PASSWORD})
    assert config.pool.size == 5 and config.tls is not None and config.tls.client_ca is not None
    assert config.connection_params()["codepage"] == "4110" and config.connection_params()["sysnr"] == "00"
    assert "RFC_READ_TABLE" in config.allowed_functions


def fake_pyrfc(connection: Any) -> Any:
    import types

    module = types.ModuleType("pyrfc")
    module.Connection = lambda config=None, **params: connection(params)  # type: ignore[attr-defined]
    return module


def test_the_command_checks_the_logon_and_names_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(f"token: {TOKEN}\ncodepage: '4110'\nsap: {{ashost: sapecd01, sysnr: '00', passwd: {PASSWORD}}}\n",
                    encoding="utf-8")
    seen: list[dict[str, Any]] = []

    def refuse(params: dict[str, Any]) -> Any:
        seen.append(params)
        raise LogonError("Name or password is incorrect (repeat logon)", key="RFC_LOGON_FAILURE")

    monkeypatch.setitem(__import__("sys").modules, "pyrfc", fake_pyrfc(refuse))
    result = CliRunner().invoke(main, ["sap-agent", "--agent-config", str(path), "--check"])
    assert result.exit_code == 1 and "SAP logon failed: RFC_LOGON_FAILURE" in result.output
    assert PASSWORD not in result.output and seen[0]["codepage"] == "4110" and seen[0]["passwd"] == PASSWORD

    def accept(params: dict[str, Any]) -> Any:
        return FakeConnection(Rig().script)

    monkeypatch.setitem(__import__("sys").modules, "pyrfc", fake_pyrfc(accept))
    result = CliRunner().invoke(main, ["sap-agent", "--agent-config", str(path), "--check"])
    assert result.exit_code == 0, result.output
    assert "reached SAP system ECD, release 731, host sapecd01, code page 4103" in result.output
