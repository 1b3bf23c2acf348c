"""``POST /predict``: instances in, labels with calibrated probabilities out.

The body is parsed by pydantic-core straight from bytes with strict, finite
floats (no bools, strings, nulls or NaN slip through as numbers), then turned
into one numpy array. Anything that does not pass that fast path goes through
`driftwise.service.validation`, the same rules the Kafka stream applies, so the 422 names
the first bad instance and says what is wrong with it in the same words.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import AllowInfNan, BaseModel, Field, Strict, ValidationError

from driftwise.service.runtime import BatchPrediction, InputShapeMismatch, ModelUnavailable
from driftwise.service.state import ServiceState
from driftwise.service.validation import MAX_ABS_VALUE, InvalidInstance, accepted_shapes, coerce_instances, instance_schema

router = APIRouter(tags=["predict"])

Number = Annotated[float, Strict(), AllowInfNan(False)]
Instance = list[Number] | list[list[Number]] | list[list[list[Number]]] | list[list[list[list[Number]]]]
_PARSE_IN_THREAD_BYTES = 256 * 1024  # bigger bodies are parsed off the event loop


class PredictRequest(BaseModel):
    """Instances to classify: each a flat list of d numbers, or nested to the model's input shape."""

    instances: list[Instance] = Field(min_length=1, description="One entry per instance, at most max_instances.")


class Prediction(BaseModel):
    label: int
    confidence: float = Field(description="Calibrated max probability.")
    probabilities: list[float]


class PredictResponse(BaseModel):
    model_version: str = Field(description="The model version that computed these predictions.")
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    detail: str
    instance: int | None = Field(None, description="Index of the offending instance, for 422s about one.")


class Rejected(Exception):
    """A request answered with an error status; ``instance`` names the bad instance, if one."""

    def __init__(self, status: int, detail: str, instance: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.instance = status, detail, instance


def document_request(openapi: dict[str, Any], input_shape: tuple[int, ...] | None, max_instances: int) -> None:
    """Put into ``openapi`` the request body the served model accepts: its instances, at most ``max_instances``.

    The schema is the contract: a body it allows is answered, one it refuses gets a 4xx. With no model served,
    any nesting of numbers is documented (and answered 503).
    """
    body = copy.deepcopy(PredictRequest.model_json_schema())
    instances = body["properties"]["instances"]
    instances["maxItems"] = max_instances
    if input_shape is not None:
        instances["items"] = instance_schema(input_shape)
        body.pop("$defs", None)
        instances["description"] += f" The served model takes input shape {list(input_shape)}."
    openapi["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"] = body


def parse_instances(body: bytes, input_shape: tuple[int, ...], max_instances: int) -> np.ndarray:
    """Body bytes -> float32 ``(n, *input_shape)``, or `Rejected` (422) saying why."""
    try:
        instances: list[Any] = PredictRequest.model_validate_json(body).instances
        numbers_only = True  # strict floats: numpy may convert them as they are
    except ValidationError:
        instances = _instances_from_untrusted(body)
        numbers_only = False  # numpy would quietly turn True or "1.5" into numbers
    if len(instances) > max_instances:  # the schema's maxItems: a 422, as any other schema violation
        raise Rejected(422, f"{len(instances)} instances is over the limit of {max_instances} per request")
    fits = False
    if numbers_only:
        try:
            X = np.asarray(instances, dtype=np.float64)  # the bound is checked before float32 rounds it
            fits = (X.shape[1:] in accepted_shapes(input_shape) and float(np.abs(X).max(initial=0.0)) <= MAX_ABS_VALUE)
            X = X.astype(np.float32)
        except ValueError:  # ragged nesting
            pass
    if not fits:
        try:
            X = coerce_instances(instances, input_shape)
        except InvalidInstance as exc:
            raise Rejected(422, str(exc), exc.index) from None
    return X.reshape(len(instances), *input_shape)


def _instances_from_untrusted(body: bytes) -> list[Any]:
    """The slow path: find out what is wrong with a body the strict model refused."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(422, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "instances" not in data:
        raise Rejected(422, 'body must be a JSON object with an "instances" list')
    instances = data["instances"]
    if not isinstance(instances, list):
        raise Rejected(422, f'"instances" must be a list, got {type(instances).__name__}')
    if not instances:
        raise Rejected(422, '"instances" must not be empty')
    return instances


def render(prediction: BatchPrediction) -> bytes:
    """The response body, built by hand: the hot path skips response-model validation.

    Probabilities are rounded to 7 decimals (float32 holds about 7 digits):
    ``0.1191989`` rather than ``0.11919894814491272``, half the bytes to write.
    """
    probabilities = np.round(prediction.probabilities.astype(np.float64), 7)
    rows = zip(prediction.labels.tolist(), probabilities.max(axis=1).tolist(), probabilities.tolist())
    predictions = [{"label": label, "confidence": conf, "probabilities": probs} for label, conf, probs in rows]
    return json.dumps({"model_version": prediction.model_version, "predictions": predictions},
                      separators=(",", ":")).encode()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise Rejected(413, f"body of {declared} bytes is over the limit of {limit}")
        return await request.body()  # the server never delivers more than the declared length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Body over the configured size limit."},
    422: {"model": ErrorBody, "description": "Not what the schema allows (shape, values, types, instance count), "
                                             "or a prediction that is not finite; names the instance."},
    503: {"model": ErrorBody, "description": "No model is loaded yet."},
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=_ERRORS,
    summary="Classify instances with the model being served",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": PredictRequest.model_json_schema()}}}},
)
async def predict(request: Request) -> Response:
    """Validate, micro-batch with concurrent requests, and answer with the version that computed it."""
    started = time.perf_counter()
    state: ServiceState = request.app.state.service  # not a dependency: resolving one costs more than the forward
    settings, metrics = state.settings, state.metrics
    try:
        input_shape = state.runtime.input_shape
        if input_shape is None:
            raise ModelUnavailable("no model is loaded; activate a version")
        body = await _read_body(request, settings.max_body_bytes)
        if len(body) > _PARSE_IN_THREAD_BYTES:
            X = await run_in_threadpool(parse_instances, body, input_shape, settings.max_instances)
        else:
            X = parse_instances(body, input_shape, settings.max_instances)
        prediction = await state.batcher.predict(X)
        bad = np.flatnonzero(~np.isfinite(prediction.probabilities).all(axis=1))
        if len(bad):  # JSON has no NaN: say so rather than send what no client can parse
            raise Rejected(422, f"instance {bad[0]}: the model's prediction is not finite", int(bad[0]))
        response = Response(render(prediction), media_type="application/json")
    except Rejected as exc:
        response = _error(exc.status, exc.detail, exc.instance)
    except ModelUnavailable as exc:
        response = _error(503, str(exc))
    except InputShapeMismatch as exc:  # the model was swapped for one with another input shape
        response = _error(422, str(exc))
    if response.status_code != 200:
        metrics.bad_requests.labels(str(response.status_code)).inc()
    metrics.request_latency.observe(time.perf_counter() - started)
    return response


def _error(status: int, detail: str, instance: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if instance is not None:
        body["instance"] = instance
    return JSONResponse(body, status_code=status)
