/* main.c -- the farmsd command line: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "farmsd: under construction\n");
    return 2;
}
