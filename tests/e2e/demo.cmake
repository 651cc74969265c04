# The README's main job and the OpenFunction samples: each runs for a few
# seconds with the real daemons and must deliver events to the function.
find_program(OFE_DEMO_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT OFE_DEMO_PYTHON3)
  find_program(OFE_DEMO_PYTHON3 python3)
endif()
foreach(sample demo eventsource-to-sink eventbus-and-trigger trigger-conditions multiple-sources)
  if(sample STREQUAL "demo")
    set(expect 4)
  else()
    set(expect 2)
  endif()
  ofe_script_test(sample_${sample}
    COMMAND ${OFE_DEMO_PYTHON3} ${PROJECT_SOURCE_DIR}/scripts/demo.py --sample ${sample}
            --build-dir ${PROJECT_BINARY_DIR} --duration 10 --interval 5 --expect ${expect}
    LABELS e2e)
endforeach()
# A port taken between choosing it and binding it: the demo starts over.
ofe_script_test(demo_port_taken
  COMMAND ${OFE_DEMO_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_demo_port_taken.py
          ${PROJECT_BINARY_DIR}
  LABELS e2e)
