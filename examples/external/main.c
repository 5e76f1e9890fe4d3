/*
 * main.c: the smallest program against an installed libdensemllm: checks that header and library
 * agree, then decodes an image.   consumer IMAGE
 */
#include <densemllm.h>

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGE\n", argv[0]);
        return 2;
    }
    if (dmllm_version_number() != DMLLM_VERSION_NUMBER) {
        fprintf(stderr, "header %d does not match library %u\n", DMLLM_VERSION_NUMBER, dmllm_version_number());
        return 1;
    }
    dmllm_image *image = NULL;
    if (dmllm_image_load_file(argv[1], &image) != DMLLM_OK) {
        fprintf(stderr, "%s\n", dmllm_last_error());
        return 1;
    }
    printf("densemllm %s: %dx%d image\n", dmllm_version_string(), dmllm_image_width(image), dmllm_image_height(image));
    dmllm_image_free(image);
    return 0;
}
