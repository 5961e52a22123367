"""Import and export of the whole configuration as one JSON file (docs/contract.md,
"Import/export format").

The file describes rows declaratively: an entry is the whole row (omitted fields take the model
defaults) and an assistant's `tools` list is the whole set of its links.

An import reads the database once (one query per entity type), computes the final state in
memory, validates it with the apps' own rules, then writes the difference with bulk
operations (a fixed number of queries per entity type) and, still inside the transaction,
re-reads the database and checks it equals the computed state before committing.

Modules, by responsibility:
    state        ConfigState (the configuration as plain values) and its rows' fields,
                 load_state, table locks
    file_format  the format's JSON Schema, reading a file, Problem (where in a file), writing
                 a state as a file (export_config) or a backup
    plan         Planner: the final state a file asks for and every rule it breaks
    matching     each entry matched to its row (id, else natural key); duplicates
    plan_rules   the rules that span rows (secretary, cycles, tools, tool_choice, includes):
                 functions of the planned state, for plan
    apply        import_config: the difference, bulk writes, verification
    check        validate_config (a file), config_problems (the live database)
"""

from config_backend.transfer.apply import ConfigVerificationError, ImportResult, import_config
from config_backend.transfer.check import config_problems, validate_config
from config_backend.transfer.file_format import (
    FORMAT_VERSION,
    ConfigFileError,
    ConfigValidationError,
    config_to_bytes,
    export_config,
    format_schema,
    read_config_file,
    write_config_file,
)
from config_backend.transfer.state import ASSISTANT_FIELDS, THREAD_FIELDS, TOOL_FIELDS

__all__ = [
    "ASSISTANT_FIELDS",
    "FORMAT_VERSION",
    "THREAD_FIELDS",
    "TOOL_FIELDS",
    "ConfigFileError",
    "ConfigValidationError",
    "ConfigVerificationError",
    "ImportResult",
    "config_problems",
    "config_to_bytes",
    "export_config",
    "format_schema",
    "import_config",
    "read_config_file",
    "validate_config",
    "write_config_file",
]
