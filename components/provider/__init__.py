"""The component provider: the platform components for every Pulumi language (TypeScript, Go, C#, Java, YAML).

Each platform that has one names its provider component in its description (`PlatformSpec.provider_component`,
in its own folder); `__main__` hosts them with Pulumi's Python component provider host, which infers the
schema (`schema.py`) from their args' type annotations and docstrings. Every component takes the stack's
settings as one `config` object (what a stack file's `rayserve:` keys hold, validated exactly as
`rayserve validate` does, before anything is declared) and, as inputs, the values that may come from other
resources or stacks.
"""

__all__ = []
