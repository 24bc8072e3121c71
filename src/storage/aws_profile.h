/*
 * The AWS shared credentials and config files (~/.aws/credentials,
 * ~/.aws/config), read as the AWS SDKs and CLI read them, for the values
 * the S3 export needs: aws_access_key_id, aws_secret_access_key,
 * aws_session_token and region of one profile.
 *
 * Format (AWS SDKs and Tools Reference Guide, "Shared config and
 * credentials files"; the SDKs' profile file readers):
 *   - "[NAME]" starts a section in the credentials file; in the config
 *     file "[default]" and "[profile NAME]" do ("[profile default]" wins
 *     over "[default]"), and other sections ("[sso-session x]",
 *     "[services x]", a bare "[x]") are read for syntax but belong to no
 *     profile. A section header starts in the first column and may end in
 *     a # or ; comment. A name outside [A-Za-z0-9_-/.%@:+\] names no
 *     profile (skipped, as the SDKs do).
 *   - "name = value" lines; blanks around name and value are dropped, and
 *     " #..." or " ;..." (a comment after white space) ends the value.
 *     Names are case-sensitive, as in the SDKs (the CLI alone folds their
 *     case): "AWS_ACCESS_KEY_ID = x" is some other setting, not read.
 *   - A line whose first non-blank character is # or ; is a comment; blank
 *     lines are skipped; "\r\n" line ends are fine.
 *   - Indented lines continue the setting above: after "s3 =" (an empty
 *     value) they are "name = value" sub-settings, which are checked and
 *     skipped; after another setting they are skipped, except under one of
 *     the four values read here, whose value must be on one line.
 *   - The same name twice in a profile (or a section given twice): the
 *     later value wins, as in the SDKs (the CLI's parser refuses it).
 *   - Anything else (no '=', no name before '=', no closing ']', a setting
 *     before any section, an indented line with nothing to continue, a NUL
 *     byte) is an error naming the file and the line, never the line's
 *     text, which may hold a secret.
 * The credentials file gives the three credential values; the config file
 * gives region and may give them too. An empty value counts as given:
 * it hides the other file's value (the caller treats "" as unset).
 *
 * Thread safety: aws_profile_parse() is pure and may run on any thread;
 * aws_profile_load() reads the environment, so call it before threads
 * start (or while nothing changes the environment).
 */
#ifndef OPS_STORAGE_AWS_PROFILE_H
#define OPS_STORAGE_AWS_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* the biggest shared file read */
#define AWS_PROFILE_MAX_BYTES ((size_t)1024 * 1024)

enum aws_profile_file {
	AWS_PROFILE_CREDENTIALS, /* AWS_SHARED_CREDENTIALS_FILE,
				    ~/.aws/credentials */
	AWS_PROFILE_CONFIG,	 /* AWS_CONFIG_FILE, ~/.aws/config */
};

/* One profile's values; every string is owned, NULL when not given. */
struct aws_profile {
	char *access_key_id;
	char *secret_access_key; /* wiped when released */
	char *session_token;	 /* wiped when released */
	char *region;
	bool found; /* a section of the profile was seen in a file read */
	/* the paths aws_profile_load() looked at, whether or not they exist;
	 * NULL: not looked at, or no path (HOME and the variable unset) */
	char *credentials_file;
	char *config_file;
};

#define AWS_PROFILE_INIT                                  \
	{                                                 \
		NULL, NULL, NULL, NULL, false, NULL, NULL \
	}

/*
 * Parse one file's text (len bytes, need not be NUL-terminated) as kind,
 * and lay the values given for profile (a name, not NULL) over p's: each
 * value this text gives replaces p's (the later file wins), the others
 * stay; p->found is set when the profile's section is in the text. name
 * is used in messages ("name:line: ..."). No I/O. A malformed line is
 * OPS_E_CONFIG; then p is unchanged.
 */
int aws_profile_parse(const char *text, size_t len, enum aws_profile_file kind,
		      const char *name, const char *profile,
		      struct aws_profile *p, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Read the file of kind and parse it as aws_profile_parse() does. The path
 * is AWS_SHARED_CREDENTIALS_FILE or AWS_CONFIG_FILE when set and not
 * empty (a leading "~/" is HOME's), else $HOME/.aws/credentials or
 * $HOME/.aws/config; it is kept in p->credentials_file or p->config_file.
 * Returns 0 when the file was read, and also when there is nothing to read:
 * HOME unset, or the default file missing. OPS_E_CONFIG when a file named
 * by the variable is missing, when either file is not a regular file (a
 * directory, a FIFO), cannot be read or is larger than
 * AWS_PROFILE_MAX_BYTES (the message names the variable or the default
 * path, and the reason), or when it is malformed; then p's values are
 * unchanged.
 */
int aws_profile_load(enum aws_profile_file kind, const char *profile,
		     struct aws_profile *p, struct ops_err *err)
	__attribute__((warn_unused_result));

/* AWS_PROFILE when set and not empty, else "default". Borrowed from the
 * environment. */
const char *aws_profile_name(void);

/* Wipe the secrets and free every string; p is AWS_PROFILE_INIT again.
 * NULL is a no-op. */
void aws_profile_release(struct aws_profile *p);

#endif
