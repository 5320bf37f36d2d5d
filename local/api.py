"""The local HTTP API: template.yaml's HttpApi routes mapped to the handlers with API Gateway (HTTP
API, payload 2.0) events, its JWT authorizer emulated with the local issuer, and the sandbox
simulators mounted under /_sandbox/<platform>. IAM-authorised routes are open on loopback."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.cfn import Stack
from local.identity import LocalIssuer
from local.lambdas import FunctionError, LocalFunctions

log = logging.getLogger("refundflow.local")
# Run a scheduled function now: POST /_local/schedules/<logical id> (GET lists them).
SCHEDULES = "/_local/schedules"


def _problem(status: int, code: str, detail: str) -> Response:
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


class LocalApi:
    def __init__(
        self,
        stack: Stack,
        functions: LocalFunctions,
        simulators: dict[str, Any],
        outputs: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.stack = stack
        self.outputs = outputs
        self.functions = functions
        self.simulators = simulators
        self.issuer = LocalIssuer(
            issuer=stack.parameters["ApproverJwtIssuer"], audience=stack.parameters["ApproverJwtAudience"]
        )
        rules: list[Rule] = []
        self.routes: dict[str, tuple[str, str, str | None]] = {}
        authorizers = stack.resources["RefundsApi"]["Properties"].get("Auth", {}).get("Authorizers", {})
        for logical_id, resource in stack.of_type("AWS::Serverless::Function").items():
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] != "HttpApi":
                    continue
                path = event["Properties"]["Path"]
                method = event["Properties"]["Method"].upper()
                authorizer = event["Properties"].get("Auth", {}).get("Authorizer")
                if authorizer not in (None, "AWS_IAM") and authorizer not in authorizers:
                    raise KeyError(f"unknown authorizer {authorizer}")
                endpoint = f"{method} {path}"
                rules.append(Rule(path.replace("{", "<").replace("}", ">"), endpoint=endpoint, methods=[method]))
                self.routes[endpoint] = (logical_id, path, authorizer)
        self.url_map = Map(rules, strict_slashes=True)
        self._resolver_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        for name, simulator in self.simulators.items():
            prefix = f"/_sandbox/{name}"
            if request.path == prefix or request.path.startswith(prefix + "/"):
                environ = dict(environ)
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = request.path[len(prefix) :] or "/"
                return simulator(environ, start_response)
        if request.path.startswith("/_local/issuer"):
            return self.issuer.wsgi(request)(environ, start_response)
        if request.path == "/_local/outputs" and self.outputs is not None:
            return Response(json.dumps(self.outputs()), mimetype="application/json")(environ, start_response)
        if request.path.startswith(SCHEDULES):
            return self.run_schedule(request)(environ, start_response)
        return self.handle(request)(environ, start_response)

    def scheduled_functions(self) -> dict[str, str]:
        """The functions the template runs on a schedule (``Type: Schedule`` events), by logical id: their rate."""
        return {
            logical_id: str(self.stack.resolve(event["Properties"]["Schedule"]))
            for logical_id, resource in self.stack.of_type("AWS::Serverless::Function").items()
            for event in resource["Properties"].get("Events", {}).values()
            if event["Type"] == "Schedule"
        }

    def run_schedule(self, request: Request) -> Response:
        """``POST /_local/schedules/<logical id>``: run a scheduled function now, with the event EventBridge's rate
        rule sends (nothing runs them on a timer locally); ``GET /_local/schedules``: which there are."""
        scheduled = self.scheduled_functions()
        logical_id = request.path[len(SCHEDULES) :].strip("/")
        if request.method == "GET" and not logical_id:
            return Response(json.dumps({"schedules": scheduled}), mimetype="application/json")
        if request.method != "POST" or logical_id not in scheduled:
            return _problem(404, "schedule_not_found", f"no scheduled function {logical_id!r}: {sorted(scheduled)}")
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{logical_id}"],
            "detail": {},
        }
        try:
            result = self.functions.invoke(logical_id, event)
        except FunctionError as error:
            log.error("%s failed: %s: %s", logical_id, error.payload["errorType"], error.payload["errorMessage"])
            return _problem(500, "schedule_failed", f"{logical_id}: {error.payload['errorMessage']}")
        return Response(json.dumps({"function": logical_id, "result": result}), mimetype="application/json")

    def handle(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, path_parameters = adapter.match()
        except Exception:
            return _problem(404, "route_not_found", f"no route {request.method} {request.path}")
        logical_id, _path, authorizer = self.routes[str(endpoint)]
        claims: dict[str, Any] | None = None
        if authorizer not in (None, "AWS_IAM"):
            claims = self.issuer.authorize(request.headers.get("Authorization", ""))
            if claims is None:
                # Before any function runs, as API Gateway's JWT authorizer does. On AWS its answer is its own
                # {"message": "Unauthorized"} (HTTP APIs cannot customise it); here it is a problem document.
                response = _problem(
                    401, "unauthorized", "a valid bearer token is required (signature, issuer, audience, expiry)"
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        event = self.event_for(request, str(endpoint), dict(path_parameters), claims)
        try:
            # Powertools keeps the current request on a class attribute (one request per Lambda process),
            # so API handlers run one at a time here; the workflow's steps still run concurrently.
            with self._resolver_lock:
                result = self.functions.invoke(logical_id, event)
        except FunctionError as error:
            # What API Gateway answers when the function fails; the local log says why.
            log.error("%s failed: %s: %s", logical_id, error.payload["errorType"], error.payload["errorMessage"])
            return Response(json.dumps({"message": "Internal Server Error"}), status=500, mimetype="application/json")
        return self.response_from(result)

    @staticmethod
    def event_for(
        request: Request, route_key: str, path_parameters: dict[str, str], claims: dict[str, Any] | None
    ) -> dict[str, Any]:
        raw = request.get_data()
        try:
            body: str | None = raw.decode("utf-8") if raw else None
            encoded = False
        except UnicodeDecodeError:
            body, encoded = base64.b64encode(raw).decode(), True
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        now = datetime.now(UTC)
        context: dict[str, Any] = {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": request.host,
            "domainPrefix": request.host.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        }
        if claims is not None:
            context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode(),
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": encoded,
        }
        if request.args:
            event["queryStringParameters"] = {key: ",".join(request.args.getlist(key)) for key in request.args}
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body is not None:
            event["body"] = body
        if request.cookies:
            event["cookies"] = [f"{key}={value}" for key, value in request.cookies.items()]
        return event

    @staticmethod
    def response_from(result: Any) -> Response:
        if not isinstance(result, dict) or "statusCode" not in result:
            return Response(json.dumps(result), status=200, mimetype="application/json")
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        response = Response(data, status=int(result["statusCode"]))
        for key, value in (result.get("headers") or {}).items():
            response.headers[key] = value
        for key, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(key, value)
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response
