"""Load CloudFormation / SAM YAML templates into plain Python data.

CloudFormation's short-form tags become the long form, as CloudFormation itself reads them:
``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
``!Condition C`` -> ``{"Condition": "C"}`` and any other ``!Name v`` -> ``{"Fn::Name": v}``
(``!Sub``, ``!If``, ``!Contains``, ...). Timestamps stay strings (``Version: 2012-10-17``).

Used by the local stack, the template tests and the artifact check; needs only PyYAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["CfnYamlLoader", "load_template", "loads_template"]


class CfnYamlLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation tags and keeps dates as strings."""


# CloudFormation keeps "2012-10-17" a string; PyYAML would make it a datetime.date.
CfnYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: CfnYamlLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _construct_tag(loader: CfnYamlLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _node_value(loader, node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # "Resource.Attribute" (the attribute itself may contain dots, e.g. Endpoint.Address)
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CfnYamlLoader.add_multi_constructor("!", _construct_tag)


def loads_template(text: str) -> dict[str, Any]:
    """Parse template text; raises ValueError unless the document is a mapping."""
    document = yaml.load(text, Loader=CfnYamlLoader)  # a SafeLoader subclass
    if not isinstance(document, dict):
        raise ValueError("a CloudFormation template must be a YAML mapping")
    return document


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse the template at ``path`` (YAML or JSON, short tags allowed)."""
    return loads_template(Path(path).read_text(encoding="utf-8"))
