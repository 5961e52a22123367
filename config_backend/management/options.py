"""Command-line options that several commands take, each spelled one way here."""


def add_switch(parser, name: str, help: str) -> None:
    """An option that is off unless given (`--force`, `--dry-run`)."""
    parser.add_argument(name, action="store_true", help=help)


def add_revision_note(parser, help: str) -> None:
    """`--message`/`-m`: the note of the revision the command makes (empty unless given)."""
    parser.add_argument("--message", "-m", default="", help=help)


def add_output_file(parser, help: str) -> None:
    """`-o`/`--output FILE`: where the command writes."""
    parser.add_argument("-o", "--output", metavar="FILE", help=help)
