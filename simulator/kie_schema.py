"""The schema engine of the simulated KIE models: fields, types, rules, answers.

``simulator.kie_models`` describes each model with these pieces; this module knows nothing of
any particular model. What KIE enforces, and so what :meth:`ModelSpec.validate` answers:

- a required field missing: ``500 "<field> is required"`` (KIE's observed answer, not a 422);
- an unknown field, a wrong JSON type (KIE is type-strict: ``"5"`` is not ``5``), a value outside
  the allowed set or range, a wrong image count or a prompt over the cap: ``422`` with a message
  naming the field (``input.duration must be a string, got 5``);
- rules between fields: ``422`` naming the fields (or the 500 of a field one of a group needs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: Model states: how createTask (or Veo's generate) answers a model.
LIVE: Final = "live"
PAUSED: Final = "paused"
UNKNOWN: Final = "unknown"
WITHDRAWN: Final = "withdrawn"
STATES: Final = (LIVE, PAUSED, UNKNOWN, WITHDRAWN)

MARKET: Final = "market"
VEO: Final = "veo"

#: What KIE answers for a paused model (every ``sora-2*`` since June 2026).
PAUSED_MSG: Final = "This interface is temporarily paused"
#: What KIE answers for a model name it does not know (422; 404 in one probe).
UNKNOWN_MSG: Final = "The model name you specified is not supported, please check the model name"
#: What KIE answers for a withdrawn page or disabled feature (505; 404 also seen).
WITHDRAWN_MSG: Final = "the page does not exist or is not published"


@dataclass(frozen=True)
class Problem:
    """Why a request is refused: KIE's code and a message naming the field."""

    code: int
    message: str


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover - json.loads makes nothing else


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def is_url(value: Any, *, asset: bool = False) -> bool:
    """An http(s) URL (or, where KIE takes uploaded assets, ``asset://<id>``)."""
    if not isinstance(value, str):
        return False
    if asset and value.startswith("asset://") and len(value) > len("asset://"):
        return True
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


@dataclass(frozen=True)
class Field:
    """One request field: its JSON type(s) and what KIE allows.

    ``types`` has more than one entry only where sources disagree (⚠). ``items`` is the type of
    an array's elements (``"url"``: an http(s) URL string, ``"object"``). ``minimum``/``maximum``
    bound numbers; ``min_length``/``max_length`` bound a string's characters; ``min_items`` /
    ``max_items`` an array's length.
    """

    name: str
    types: tuple[str, ...]
    required: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    url: bool = False
    asset: bool = False
    items: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    default: Any = None

    def check(self, value: Any, path: str) -> Problem | None:
        """``None`` if ``value`` is acceptable, else the 422 naming ``path``."""
        kind = _json_type(value)
        accepted = set(self.types)
        if "number" in accepted:
            accepted.add("integer")
        if kind not in accepted:
            wanted = " or ".join(_ARTICLE.get(t, t) for t in self.types)
            return Problem(422, f"{path} must be {wanted}, got {_show(value)}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(_show(c) for c in self.choices)
            return Problem(422, f"{path} must be one of {allowed}; got {_show(value)}")
        if kind in ("integer", "number"):
            if self.minimum is not None and value < self.minimum:
                return Problem(422, f"{path} must be at least {self.minimum:g}, got {value}")
            if self.maximum is not None and value > self.maximum:
                return Problem(422, f"{path} must be at most {self.maximum:g}, got {value}")
        if kind == "string":
            if self.min_length is not None and len(value) < self.min_length:
                return Problem(422, f"{path} must have at least {self.min_length} characters")
            if self.max_length is not None and len(value) > self.max_length:
                return Problem(422, f"{path} must have at most {self.max_length} characters")
            if self.url and not is_url(value, asset=self.asset):
                return Problem(422, f"{path} must be an http(s) URL")
        if kind == "array":
            if self.min_items is not None and len(value) < self.min_items:
                return Problem(422, f"{path} must have at least {self.min_items} item(s)")
            if self.max_items is not None and len(value) > self.max_items:
                return Problem(422, f"{path} must have at most {self.max_items} item(s)")
            for i, item in enumerate(value):
                problem = self._check_item(item, f"{path}[{i}]")
                if problem is not None:
                    return problem
        return None

    def _check_item(self, item: Any, path: str) -> Problem | None:
        if self.items == "url":
            if not is_url(item, asset=self.asset):
                return Problem(422, f"{path} must be an http(s) URL, got {_show(item)}")
        elif self.items == "string":
            if not isinstance(item, str):
                return Problem(422, f"{path} must be a string, got {_show(item)}")
        elif self.items == "object" and not isinstance(item, dict):
            return Problem(422, f"{path} must be an object, got {_show(item)}")
        return None


_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
}

Params = Mapping[str, Any]
Rule = Callable[[Params, str], Problem | None]


@dataclass(frozen=True)
class ModelSpec:
    """One model as KIE serves it."""

    name: str
    family: str
    fields: tuple[Field, ...]
    #: KIE credits for a request with these (already validated) parameters.
    price: Callable[[Params], float]
    typical_render_seconds: float
    #: Where the product image goes (informative: shown by ``GET /_sim/models``).
    image_fields: tuple[str, ...]
    #: Checks between fields, run after every field passed.
    rules: tuple[Rule, ...] = ()
    #: Alternative spellings KIE may accept for a field (⚠ conflicts), alias → field name.
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: The state KIE serves it in today.
    default_state: str = LIVE
    note: str = ""
    #: A valid request as KIE's page gives it (Market: the createTask body without
    #: ``callBackUrl``; Veo: the generate body); ``None`` for a model without one.
    example: Mapping[str, Any] | None = None

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def prompt_max(self) -> int | None:
        prompt = self.field("prompt")
        return prompt.max_length if prompt is not None else None

    def validate(self, params: Params, prefix: str) -> Problem | None:
        """Check ``params`` (Market: the ``input`` object; Veo: the whole body).

        ``prefix`` is put before field names in messages (``"input."`` for Market). Missing
        required fields come first (500), then unknown fields, then each field, then the rules.
        """
        known = {f.name: f for f in self.fields}
        given = {self.aliases.get(k, k): v for k, v in params.items()}
        for f in self.fields:
            if f.required and f.name not in given:
                return Problem(500, f"{f.name} is required")
        for name in params:
            if self.aliases.get(name, name) not in known:
                return Problem(422, f"{prefix}{name} is not a parameter of {self.name}")
        for name, value in params.items():
            problem = known[self.aliases.get(name, name)].check(value, f"{prefix}{name}")
            if problem is not None:
                return problem
        for rule in self.rules:
            problem = rule(given, prefix)
            if problem is not None:
                return problem
        return None

    def value(self, params: Params, name: str) -> Any:
        """A parameter as KIE reads it: the given value, else the field's default."""
        for key, value in params.items():
            if self.aliases.get(key, key) == name:
                return value
        f = self.field(name)
        return f.default if f is not None else None

    def credits(self, params: Params) -> float:
        return round(float(self.price(_Defaults(self, params))), 4)

    def example_params(self) -> dict[str, Any]:
        """The parameters of this model's documented example (``{}`` when it has none)."""
        if self.example is None:
            return {}
        params = self.example if self.family == VEO else self.example["input"]
        return dict(params)

    def example_credits(self) -> float:
        """What the documented example costs: the price of the model's usual options."""
        return self.credits(self.example_params())

    def describe(self) -> dict[str, Any]:
        """What ``GET /_sim/models`` shows of the model (besides its state and counters)."""
        return {
            "model": self.name,
            "family": self.family,
            "endpoint": "/api/v1/veo/generate" if self.family == VEO else "/api/v1/jobs/createTask",
            "default_state": self.default_state,
            "typical_render_seconds": self.typical_render_seconds,
            "prompt_max": self.prompt_max,
            "image_fields": list(self.image_fields),
            "example_credits": self.example_credits(),
            "fields": {
                f.name: {
                    "types": list(f.types),
                    "required": f.required,
                    **({"choices": list(f.choices)} if f.choices is not None else {}),
                    **({"minimum": f.minimum} if f.minimum is not None else {}),
                    **({"maximum": f.maximum} if f.maximum is not None else {}),
                    **({"max_length": f.max_length} if f.max_length is not None else {}),
                    **({"max_items": f.max_items} if f.max_items is not None else {}),
                    **({"default": f.default} if f.default is not None else {}),
                }
                for f in self.fields
            },
            "note": self.note,
        }


class _Defaults(Mapping[str, Any]):
    """Parameters as a price function reads them: each field's default fills what is missing."""

    def __init__(self, spec: ModelSpec, params: Params) -> None:
        self._spec = spec
        self._params = params

    def __getitem__(self, name: str) -> Any:
        return self._spec.value(self._params, name)

    def __iter__(self) -> Any:
        return iter(f.name for f in self._spec.fields)

    def __len__(self) -> int:
        return len(self._spec.fields)


# --- field shorthands ----------------------------------------------------------------------------


def string(name: str, **kw: Any) -> Field:
    return Field(name, ("string",), **kw)


def integer(name: str, **kw: Any) -> Field:
    return Field(name, ("integer",), **kw)


def boolean(name: str, **kw: Any) -> Field:
    return Field(name, ("boolean",), **kw)


def urls(name: str, **kw: Any) -> Field:
    return Field(name, ("array",), items="url", **kw)


def url(name: str, **kw: Any) -> Field:
    return Field(name, ("string",), url=True, **kw)


def strings(*values: int) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def seconds(params: Params, name: str = "duration") -> int:
    """A duration as a number of seconds, whether KIE wants it as a string or an integer."""
    return int(params[name])


# --- rules between fields ------------------------------------------------------------------------


def needs_one_of(*names: str) -> Rule:
    def rule(params: Params, prefix: str) -> Problem | None:
        if any(params.get(n) not in (None, "", []) for n in names):
            return None
        return Problem(500, f"{names[0]} is required")

    return rule


def needs(field_name: str, needed: str) -> Rule:
    def rule(params: Params, prefix: str) -> Problem | None:
        if field_name in params and needed not in params:
            return Problem(422, f"{prefix}{field_name} needs {prefix}{needed}")
        return None

    return rule


def exclusive(group_a: tuple[str, ...], group_b: tuple[str, ...]) -> Rule:
    def rule(params: Params, prefix: str) -> Problem | None:
        a = [n for n in group_a if params.get(n)]
        b = [n for n in group_b if params.get(n)]
        if a and b:
            return Problem(422, f"{prefix}{a[0]} cannot be used together with {prefix}{b[0]}")
        return None

    return rule
