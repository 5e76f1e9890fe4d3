/*
 * cli.h: the densemllm command-line tool: a table of subcommands, each in its own file, sharing a
 * few helpers for errors and options. Commands use only the public header.
 */
#ifndef DMLLM_CLI_H
#define DMLLM_CLI_H

#include "densemllm.h"

#include <stdio.h>

typedef struct cli_command {
    const char *name;
    const char *summary;
    const char *usage;                   /* printed by "densemllm NAME --help" */
    int (*run)(int argc, char **argv);   /* argv[0] is the command name; returns the exit code */
} cli_command;

extern const cli_command cli_info_command;
extern const cli_command cli_readout_command;

/* Prints "densemllm: <what>: <status text>: <library message>" to stderr; returns exit code 1. */
int cli_fail(dmllm_status status, const char *what);
/* True when argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif
