"""Arguments shared by several commands: each module adds a group of them to a parser and
turns the parsed values into what the commands need (it is not a command itself)."""
