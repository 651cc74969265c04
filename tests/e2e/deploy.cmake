# Deployment files: systemd units verified against this build's binaries.
ofe_script_test(deploy_systemd_units COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_systemd_units.sh
                LABELS e2e)
if(OFE_TESTS)
  set_tests_properties(deploy_systemd_units PROPERTIES SKIP_RETURN_CODE 77)
endif()
find_program(OFE_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT OFE_PYTHON3)
  find_program(OFE_PYTHON3 python3)
endif()
ofe_script_test(deploy_kubernetes_manifests
                COMMAND ${OFE_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_kubernetes_manifests.py
                LABELS e2e)
