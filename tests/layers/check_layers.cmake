# cmake -DROOT=<tree> -P check_layers.cmake
#
# Fails when a file of one layer includes a header of a layer it may not use (a higher
# one, or a sibling), or when a layer that must be free of MPI includes <mpi.h>. The
# layers and what each may include (docs/architecture.md):
#
#   common         common
#   protect        common
#   progress       common
#   transport      common progress                      (src/transport, but transport/mpi)
#   transport/mpi  common progress transport            + <mpi.h>
#   defer          common protect progress transport
#   coll           common progress transport
#   model          common progress transport coll
#   tune           common progress transport coll model
#   coll/mpi       common progress transport transport/mpi coll tandem   + <mpi.h>
#   interpose      common protect progress transport transport/mpi defer coll coll/mpi   + <mpi.h>
#   tandem         (include/tandem, the public C++ API)  + <mpi.h>
#   vcluster       common
#   cli            common coll model tune vcluster
#   train          (libtorch only: data, networks, pruning, sparse kernels)
#   ddp            tandem                                 + <mpi.h> (and libtorch)
# Every layer may include its own headers. Files under apps/, bench/ and tests/ are
# programs on top of everything and are not checked.
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<source tree> -P check_layers.cmake")
endif()

set(allowed_common "")
set(allowed_protect "common")
set(allowed_progress "common")
set(allowed_transport "common;progress")
set(allowed_transport_mpi "common;progress;transport;MPI")
set(allowed_defer "common;protect;progress;transport")
set(allowed_coll "common;progress;transport")
set(allowed_model "common;progress;transport;coll")
set(allowed_tune "common;progress;transport;coll;model")
set(allowed_coll_mpi "common;progress;transport;transport_mpi;coll;model;tandem;MPI")
set(allowed_interpose "common;protect;progress;transport;transport_mpi;defer;coll;model;coll_mpi;MPI")
set(allowed_tandem "MPI")
set(allowed_vcluster "common")
set(allowed_cli "common;coll;model;tune;vcluster")
set(allowed_train "")
set(allowed_ddp "tandem;MPI")

# The layer of a path below src/ or include/ (a file's, or an include's), or "" if none.
function(layer_of path out)
  set(l "")
  if(path MATCHES "^(src/)?transport/mpi/")
    set(l transport_mpi)
  elseif(path MATCHES "^(src/)?coll/mpi/")
    set(l coll_mpi)
  elseif(path MATCHES "^include/tandem/" OR path MATCHES "^tandem/")
    set(l tandem)
  elseif(path MATCHES "^(src/)?(common|protect|progress|transport|defer|coll|model|tune|interpose|vcluster|cli|train|ddp)/")
    set(l ${CMAKE_MATCH_2})
  endif()
  set(${out} "${l}" PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE files RELATIVE ${ROOT} ${ROOT}/src/* ${ROOT}/include/*)
set(problems "")
set(checked 0)
foreach(f IN LISTS files)
  if(NOT f MATCHES "\\.(c|cc|cpp|h|hpp)$")
    continue()
  endif()
  layer_of("${f}" layer)
  if(layer STREQUAL "")
    string(APPEND problems "${f}: not in any layer (add its directory to check_layers.cmake and docs/architecture.md)\n")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  set(allowed ${allowed_${layer}} ${layer})
  file(STRINGS ${ROOT}/${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  foreach(line IN LISTS lines)
    if(line MATCHES "#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(inc ${CMAKE_MATCH_1})
      layer_of("${inc}" target)
      if(target STREQUAL "")
        continue()  # a header next to the file, or a third-party one
      endif()
    elseif(line MATCHES "#[ \t]*include[ \t]*<(mpi\\.h|mpi_proto\\.h|mpio\\.h)>")
      set(inc "<${CMAKE_MATCH_1}>")
      set(target MPI)
    else()
      continue()
    endif()
    list(FIND allowed ${target} found)
    if(found LESS 0)
      string(REPLACE ";" " " may "${allowed}")
      string(APPEND problems "${f}: includes ${inc} (layer ${target}); layer ${layer} may include only: ${may}\n")
    endif()
  endforeach()
endforeach()
if(checked EQUAL 0)
  message(FATAL_ERROR "no source files found under ${ROOT}/src or ${ROOT}/include")
endif()
if(problems)
  message("${problems}")
  message(FATAL_ERROR "layer violations (above)")
endif()
message(STATUS "layers: ${checked} files, every include allowed")
