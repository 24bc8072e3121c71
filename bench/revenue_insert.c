/*
 * Benchmark helper for bench/revenue: the original generator's write path,
 * one parameterised INSERT per row in one transaction (node-pg sends each
 * client.query(text, values) as an unnamed Parse/Bind/Execute, which
 * PQexecParams does too), after the same DELETE of the window.
 *   revenue_insert CONNINFO PUBLISHER FROM TO < rows.tsv
 * rows.tsv: placement_id, adapter_id, impressions, clicks, revenue,
 * event_date, tab-separated (COPY text output). Prints the row count.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
check(PGconn *c, PGresult *r, const char *what)
{
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "revenue_insert: %s: %s", what,
			PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

int
main(int argc, char **argv)
{
	static const char ins[] =
		"INSERT INTO revenue_events (publisher_id, placement_id,"
		" adapter_id, impressions, clicks, revenue, event_date)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7)";
	char line[512];
	long n = 0;
	PGconn *c;

	if (argc != 5) {
		fprintf(stderr, "usage: revenue_insert CONNINFO PUBLISHER "
				"FROM TO < rows.tsv\n");
		return 64;
	}
	c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "revenue_insert: %s", PQerrorMessage(c));
		return 1;
	}
	check(c, PQexec(c, "BEGIN"), "begin");
	{
		const char *p[3] = { argv[2], argv[3], argv[4] };

		check(c,
		      PQexecParams(c,
				   "DELETE FROM revenue_events WHERE"
				   " publisher_id = $1 AND event_date"
				   " BETWEEN $2 AND $3",
				   3, NULL, p, NULL, NULL, 0),
		      "delete");
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		const char *p[7];
		char *s = line;

		line[strcspn(line, "\n")] = '\0';
		p[0] = argv[2];
		for (int i = 1; i < 7; i++) {
			p[i] = s;
			s = strchr(s, '\t');
			if (s == NULL && i < 6) {
				fprintf(stderr, "revenue_insert: bad line\n");
				return 1;
			}
			if (s != NULL)
				*s++ = '\0';
		}
		check(c, PQexecParams(c, ins, 7, NULL, p, NULL, NULL, 0),
		      "insert");
		n++;
	}
	check(c, PQexec(c, "COMMIT"), "commit");
	PQfinish(c);
	printf("%ld\n", n);
	return 0;
}
