#include <stdio.h>
int main(void) { puts("vireo: under construction"); return 0; }
