/*
 * Option parsing for every command: getopt_long with clear messages and no
 * abbreviations. getopt_long accepts any unambiguous prefix of a long
 * option ("--e" for "--execute"); for commands that delete data or move
 * money that is a hazard, so apexops requires every long option spelled
 * out in full, for every command alike.
 *
 * Not thread-safe (getopt's globals): call from the main thread only.
 */
#ifndef OPS_CLI_OPTS_H
#define OPS_CLI_OPTS_H

#include <getopt.h>

/* Returned by cli_getopt() after it printed a usage message. */
#define CLI_OPT_ERROR '?'

/*
 * Like getopt_long(argc, argv, shortopts, longopts, NULL), messages
 * prefixed "apexops CMD: ":
 *   - on its first call for an argv, every "--name" token (up to "--") must
 *     be a long option's full name: a prefix ("--e") is refused naming the
 *     option it would have meant, an unknown one is refused as unknown;
 *   - a missing value says "option '--months' needs a value";
 *   - an unknown option says so.
 * Returns the option's val, -1 at the end, or CLI_OPT_ERROR after printing
 * (the caller returns OPS_EXIT_USAGE). shortopts must not start with ':'.
 */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

#endif
