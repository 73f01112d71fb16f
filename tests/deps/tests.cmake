# The module rules of scripts/check-deps hold in this tree, and the check catches each kind of
# wrong-direction include.
add_test(NAME DependencyRules.HoldInThisTree COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check-deps)
add_test(NAME DependencyRules.AWrongDirectionIncludeFails
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/check-deps-test ${PROJECT_SOURCE_DIR}/scripts/check-deps)
# The compiler holds each module to the same rules (cmake/Modules.cmake): a planted file compiled
# with a module target's own flags fails to build when it includes a module it may not.
add_test(NAME DependencyRules.AWrongDirectionIncludeFailsToBuild
  COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/build-scopes-test ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(DependencyRules.HoldInThisTree DependencyRules.AWrongDirectionIncludeFails
  DependencyRules.AWrongDirectionIncludeFailsToBuild PROPERTIES LABELS unit TIMEOUT 300)
