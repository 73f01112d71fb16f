# The module rules of scripts/check-deps hold in this tree, and the check catches each kind of
# wrong-direction include.
add_test(NAME DependencyRules.HoldInThisTree COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check-deps)
add_test(NAME DependencyRules.AWrongDirectionIncludeFails
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/check-deps-test ${PROJECT_SOURCE_DIR}/scripts/check-deps)
set_tests_properties(DependencyRules.HoldInThisTree DependencyRules.AWrongDirectionIncludeFails
  PROPERTIES LABELS unit TIMEOUT 300)
