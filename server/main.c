/* main.c -- the farmsd command line: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "server/cli.h"

#define FARMSD_VERSION "0.2.0"

static const char main_usage[] =
    "usage: farmsd COMMAND [options]\n"
    "\n"
    "FARMS (fixed-aspect-ratio matrix subsampling) eigenspectrum diagnosis of\n"
    "neural-network checkpoints: per weight matrix, the power-law exponent alpha\n"
    "of its empirical spectral density (alpha < 2 over-trained, > 6 under-trained).\n"
    "\n"
    "Commands:\n"
    "  analyze FILE   analyse every weight matrix and print per-layer metrics\n"
    "  inspect FILE   list tensors, dtypes, shapes and SHA-256s without analysing\n"
    "  compare A B    two checkpoints side by side, layer by layer, with the change of each\n"
    "                 metric (layers matched by name, then by block and role)\n"
    "  serve          the HTTP service (see farmsd serve --help)\n"
    "  migrate        copy a database into another: --from sqlite:PATH --to postgresql://...\n"
    "  synth          write a synthetic checkpoint of a real model shape\n"
    "  version        print the version\n"
    "\n"
    "Run `farmsd COMMAND --help` for a command's options.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(main_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "analyze") == 0)
        return cli_analyze_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "serve") == 0)
        return cli_serve_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "migrate") == 0)
        return cli_migrate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "inspect") == 0)
        return cli_inspect_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "synth") == 0)
        return cli_synth_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "compare") == 0)
        return cli_compare_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("farmsd %s\n", FARMSD_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        fputs(main_usage, stdout);
        return 0;
    }
    fprintf(stderr, "farmsd: unknown command '%s'\nTry 'farmsd --help'.\n", argv[1]);
    return CLI_EXIT_USAGE;
}
