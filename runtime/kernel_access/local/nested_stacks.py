"""Nested stacks of a cloud assembly: where their templates are, and one template with them merged in.

A CDK ``NestedStack`` is an ``AWS::CloudFormation::Stack`` resource in its parent's template; the
nested template itself is a file asset of the cloud assembly (``*.nested.template.json`` beside the
parent). CloudFormation fetches it from ``TemplateURL`` at deploy time; here it is found in the
assembly directory, from the resource's ``aws:asset:path`` metadata (written when asset metadata is
on, as the CLI and ``build_app`` have it) or else from the stack's asset manifest
(``*.assets.json``: the file asset whose S3 object key ``TemplateURL`` names).

Two readers: the synth-time limits check (every nested template is a template of its own, with its
own 500 resources and 1 MB) and the local emulator, which runs one flat template:
:func:`merge_nested_stacks` puts every nested stack's resources into the parent's, as CloudFormation
would have created them, with each template parameter replaced by what the parent passes and each
``Fn::GetAtt [Stack, Outputs.X]`` by the output's value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

NESTED_STACK_TYPE: Final = "AWS::CloudFormation::Stack"
ASSET_PATH_METADATA: Final = "aws:asset:path"
_SUB_VARIABLE: Final = re.compile(r"\$\{(?!!)([^}.]+)\}")


class NestedStackError(RuntimeError):
    """A nested stack whose template is not in the assembly, or cannot be merged."""


class NestedTemplates:
    """Finds the template file of each ``AWS::CloudFormation::Stack`` of one assembly directory."""

    def __init__(self, assembly_dir: Path) -> None:
        self.assembly_dir = assembly_dir
        self._by_object_key: dict[str, Path] | None = None

    def _asset_files(self) -> dict[str, Path]:
        """S3 object key -> local file, over every asset manifest of the directory."""
        if self._by_object_key is None:
            self._by_object_key = {}
            for manifest in sorted(self.assembly_dir.glob("*.assets.json")):
                try:
                    files = json.loads(manifest.read_text()).get("files", {})
                except (OSError, ValueError):
                    continue
                for asset in files.values():
                    source = asset.get("source", {}).get("path")
                    for destination in asset.get("destinations", {}).values():
                        key = destination.get("objectKey")
                        if isinstance(source, str) and isinstance(key, str):
                            self._by_object_key[key] = self.assembly_dir / source
        return self._by_object_key

    def template_file(self, resource: Mapping[str, Any]) -> Path | None:
        """The nested template of ``resource`` (an ``AWS::CloudFormation::Stack``), or None when the
        assembly does not hold it (a stack built from a template URL outside the app)."""
        metadata = resource.get("Metadata")
        declared = metadata.get(ASSET_PATH_METADATA) if isinstance(metadata, Mapping) else None
        if isinstance(declared, str) and (self.assembly_dir / declared).is_file():
            return self.assembly_dir / declared
        properties = resource.get("Properties")
        url = json.dumps(properties.get("TemplateURL") if isinstance(properties, Mapping) else None)
        for key, path in self._asset_files().items():
            if key in url and path.is_file():
                return path
        return None

    def of(self, body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Path | None]]:
        """``(logical id, resource, template file or None)`` of every nested stack in ``body``."""
        resources = body.get("Resources")
        for logical_id, resource in (resources if isinstance(resources, Mapping) else {}).items():
            if isinstance(resource, Mapping) and resource.get("Type") == NESTED_STACK_TYPE:
                yield str(logical_id), resource, self.template_file(resource)


# --------------------------------------------------------------------------------------------------
# Merging (for the local emulator)
# --------------------------------------------------------------------------------------------------


def merge_nested_stacks(body: Mapping[str, Any], assembly_dir: Path) -> dict[str, Any]:
    """``body`` with every nested stack (recursively) replaced by the resources of its template.

    Raises :class:`NestedStackError` when a nested template is missing, a parameter has neither a
    value nor a default, or a nested logical id (resource or condition) is already taken: the
    emulator refuses a template it would run wrongly.
    """
    locator = NestedTemplates(assembly_dir)
    merged: dict[str, Any] = {key: value for key, value in body.items() if key != "Resources"}
    resources: dict[str, Any] = dict(body.get("Resources", {}))
    outputs: dict[str, Mapping[str, Any]] = {}
    for logical_id, resource, path in list(locator.of(body)):
        if path is None:
            raise NestedStackError(f"nested stack {logical_id}: its template is not in {assembly_dir}")
        nested = merge_nested_stacks(json.loads(path.read_text()), assembly_dir)
        values = _parameter_values(logical_id, resource, nested)
        del resources[logical_id]
        for section, target in (
            ("Resources", resources),
            ("Conditions", merged.setdefault("Conditions", {})),
        ):
            for nested_id, value in nested.get(section, {}).items():
                if nested_id in target:
                    raise NestedStackError(f"nested stack {logical_id}: {section} id {nested_id} is taken")
                target[nested_id] = _substitute(value, values)
        outputs[logical_id] = {
            name: _substitute(output.get("Value"), values)
            for name, output in nested.get("Outputs", {}).items()
        }
    if not outputs:
        return {**merged, "Resources": resources}
    if not merged.get("Conditions"):
        merged.pop("Conditions", None)
    replaced = _replace_outputs({**merged, "Resources": resources}, outputs)
    for resource in replaced["Resources"].values():
        _drop_dependencies(resource, outputs)
    result: dict[str, Any] = replaced
    return result


def _parameter_values(
    logical_id: str, resource: Mapping[str, Any], nested: Mapping[str, Any]
) -> dict[str, Any]:
    passed = resource.get("Properties", {}).get("Parameters", {}) or {}
    values: dict[str, Any] = {}
    for name, declaration in nested.get("Parameters", {}).items():
        if name in passed:
            values[name] = passed[name]
        elif "Default" in declaration:
            values[name] = declaration["Default"]
        else:
            raise NestedStackError(f"nested stack {logical_id}: no value for its parameter {name}")
    return values


def _substitute(value: Any, parameters: Mapping[str, Any]) -> Any:
    """``value`` with each ``Ref`` to a template parameter replaced by the value passed for it."""
    if isinstance(value, list):
        return [_substitute(item, parameters) for item in value]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" and isinstance(argument, str) and argument in parameters:
            return parameters[argument]
        if key == "Fn::Sub":
            return {key: _substitute_sub(argument, parameters)}
    return {key: _substitute(item, parameters) for key, item in value.items()}


def _substitute_sub(argument: Any, parameters: Mapping[str, Any]) -> Any:
    """``Fn::Sub`` naming a parameter as ``${Name}``: pass the parent's value as a Sub variable."""
    text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], dict(argument[1]))
    variables = {name: _substitute(item, parameters) for name, item in variables.items()}
    for name in _SUB_VARIABLE.findall(str(text)):
        if name in parameters and name not in variables:
            variables[name] = parameters[name]
    return [text, variables] if variables else text


def _replace_outputs(value: Any, outputs: Mapping[str, Mapping[str, Any]]) -> Any:
    """``Fn::GetAtt [Stack, Outputs.X]`` (either form) replaced by that output's value."""
    if isinstance(value, list):
        return [_replace_outputs(item, outputs) for item in value]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1 and "Fn::GetAtt" in value:
        argument = value["Fn::GetAtt"]
        target, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        if target in outputs and str(attribute).startswith("Outputs."):
            name = str(attribute).removeprefix("Outputs.")
            if name not in outputs[target]:
                raise NestedStackError(
                    f"Fn::GetAtt {target}.{attribute}: the nested stack has no such output"
                )
            return outputs[target][name]
    return {key: _replace_outputs(item, outputs) for key, item in value.items()}


def _drop_dependencies(resource: Any, removed: Mapping[str, Any]) -> None:
    """A ``DependsOn`` on a merged nested stack is met by its resources being there: drop it."""
    if not isinstance(resource, dict) or "DependsOn" not in resource:
        return
    depends = resource["DependsOn"]
    kept = [d for d in (depends if isinstance(depends, list) else [depends]) if d not in removed]
    if kept:
        resource["DependsOn"] = kept
    else:
        del resource["DependsOn"]
