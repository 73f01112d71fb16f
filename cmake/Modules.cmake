# Module include scopes: the compiler holds each module to the rules of cmake/module-rules.txt.
# A module's targets do not see the source tree; they see an include root in the build tree
# (scopes/<module>) that holds symlinks to the module's own folder and to the folders it may
# include, and nothing else, so `#include "mux/master.h"` in base/ is a file not found. A part of
# mux/ gets a real mux/ folder there with links to the parts it may include only. Generated
# headers (protobuf's) come from the generating module's own folder in the build tree, on the
# include path of the modules that may include that module. scripts/check-deps reads the same
# rules and says the same thing as text, with the rule that was broken.

set(MCONNECT_MODULE_RULES ${PROJECT_SOURCE_DIR}/cmake/module-rules.txt)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${MCONNECT_MODULE_RULES})

# MCONNECT_ALLOWS_<module>: the modules <module> may include; MCONNECT_MODULES: every module.
file(STRINGS ${MCONNECT_MODULE_RULES} rule_lines REGEX "^[^# ]")
set(MCONNECT_MODULES)
foreach(line IN LISTS rule_lines)
  if(NOT line MATCHES "^([^:]+):(.*)$")
    message(FATAL_ERROR "${MCONNECT_MODULE_RULES}: not `module: modules...`: ${line}")
  endif()
  set(module ${CMAKE_MATCH_1})
  separate_arguments(allows UNIX_COMMAND "${CMAKE_MATCH_2}")
  set(MCONNECT_ALLOWS_${module} ${allows})
  list(APPEND MCONNECT_MODULES ${module})
endforeach()

# Where a module's generated headers are: <dir>/<file>.pb.h under it, as they are included.
function(mconnect_generated_root out dir)
  set(${out} ${PROJECT_BINARY_DIR}/${dir}/generated PARENT_SCOPE)
endfunction()

# mconnect_protobuf_library(NAME DIR PROTOS...): a static library of the C++ that protoc makes
# of PROTOS (in the calling folder, module DIR), included as "DIR/<file>.pb.h". Generated code is
# compiled without -Werror-worthy warnings of ours. Its headers reach other targets through their
# scopes (mconnect_module), not through this library.
function(mconnect_protobuf_library name dir)
  add_library(${name} STATIC ${ARGN})
  mconnect_generated_root(generated ${dir})
  protobuf_generate(TARGET ${name} LANGUAGE cpp
    IMPORT_DIRS ${CMAKE_CURRENT_SOURCE_DIR}
    PROTOC_OUT_DIR ${generated}/${dir})
  target_include_directories(${name} PRIVATE ${generated})
  target_link_libraries(${name} PUBLIC protobuf::libprotobuf)
  target_compile_options(${name} PRIVATE -w)
endfunction()

# Links <root>/<module> to the module's folder; a part of a split folder goes into a real
# <root>/<top>/ unless the whole top folder is in the scope already.
function(mconnect_link_module root module scope)
  if(module MATCHES "^([^/]+)/")
    if(CMAKE_MATCH_1 IN_LIST scope)
      return()
    endif()
    file(MAKE_DIRECTORY ${root}/${CMAKE_MATCH_1})
  endif()
  file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${module} ${root}/${module} SYMBOLIC)
endfunction()

# Makes scopes/<module> once per configure, from the rules as they are now.
function(mconnect_make_scope root dir)
  get_property(made GLOBAL PROPERTY MCONNECT_SCOPE_MADE_${dir})
  if(made)
    return()
  endif()
  set_property(GLOBAL PROPERTY MCONNECT_SCOPE_MADE_${dir} TRUE)
  file(REMOVE_RECURSE ${root})
  file(MAKE_DIRECTORY ${root})
  set(scope ${dir} ${MCONNECT_ALLOWS_${dir}})
  foreach(module IN LISTS scope)
    mconnect_link_module(${root} ${module} "${scope}")
  endforeach()
endfunction()

# The generated-header roots of the modules in a scope: those of the modules with .proto files.
function(mconnect_generated_roots out)
  set(roots)
  foreach(module IN LISTS ARGN)
    file(GLOB protos ${PROJECT_SOURCE_DIR}/${module}/*.proto)
    if(protos)
      mconnect_generated_root(generated ${module})
      list(APPEND roots ${generated})
    endif()
  endforeach()
  set(${out} ${roots} PARENT_SCOPE)
endfunction()

# mconnect_module(TARGET DIR): TARGET, a library or program of module DIR, includes only what the
# rules let DIR include.
function(mconnect_module target dir)
  if(NOT dir IN_LIST MCONNECT_MODULES)
    message(FATAL_ERROR "${dir}/: a module with no dependency rules (add it to ${MCONNECT_MODULE_RULES})")
  endif()
  string(REPLACE "/" "_" name ${dir})
  set(root ${PROJECT_BINARY_DIR}/scopes/${name})
  mconnect_make_scope(${root} ${dir})
  mconnect_generated_roots(generated ${dir} ${MCONNECT_ALLOWS_${dir}})
  target_include_directories(${target} PRIVATE ${root} ${generated})
endfunction()

# Tests, benchmarks and fuzz targets may include anything: the source tree and every generated
# header.
add_library(mconnect_full_scope INTERFACE)
mconnect_generated_roots(all_generated ${MCONNECT_MODULES})
target_include_directories(mconnect_full_scope INTERFACE ${PROJECT_SOURCE_DIR} ${all_generated})
