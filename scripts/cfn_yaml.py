"""CloudFormation YAML for Python: the short-form intrinsic tags (`!Ref`,
`!Sub`, `!If`, ...) load as one-key mappings (`{"Ref": ...}`), so scripts
can walk a template without understanding each tag."""

import yaml


class Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


Loader.add_multi_constructor("!", _tag)
