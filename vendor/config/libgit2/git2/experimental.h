/* experimental.h: libgit2's experimental switches; ccr enables none. */
#ifndef INCLUDE_experimental_h__
#define INCLUDE_experimental_h__
#endif
