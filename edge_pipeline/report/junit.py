"""JUnit XML view of a report: one test case per artifact stage and per check, failures carry the message."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from edge_pipeline.report.model import Check, Report
from edge_pipeline.text import printable


def to_junit(report: Report, checks: Sequence[Check] | None = None) -> str:
    """`checks`: the gate's own (default: the report's)."""
    checks = report.checks if checks is None else checks
    suite = ET.Element("testsuite", name=f"edgepipe.{report.target}")
    cases = 0
    failures = 0
    skipped = 0
    for artifact in report.artifacts:
        case = ET.SubElement(suite, "testcase", classname=f"edgepipe.{report.target}.{artifact.label}",
                             name="build+validate")
        cases += 1
        if artifact.status == "unvalidated":
            skipped += 1
            reason = (artifact.export.unvalidated_reason if artifact.export else None) or "not validated"
            ET.SubElement(case, "skipped", message=f"unvalidated: {reason}")
        elif artifact.status != "ok":
            failures += 1
            error = artifact.error
            message = str(error.message if error and error.message is not None else "failed")
            failure = ET.SubElement(case, "failure", message=message, type=str(error.type or "" if error else ""))
            failure.text = str(error.message or "" if error else "")
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname=f"edgepipe.{report.target}.{check.artifact}",
                             name=f"{check.kind}:{check.metric}")
        cases += 1
        if check.kind == "skipped":
            skipped += 1
            ET.SubElement(case, "skipped", message=check.message)
        elif not check.passed:
            failures += 1
            failure = ET.SubElement(case, "failure", message=check.message, type=check.metric)
            failure.text = check.message
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    root = ET.Element("testsuites")
    root.append(suite)
    for element in root.iter():     # text from users and libraries: no escape codes (XML 1.0 cannot hold them)
        element.attrib.update({k: printable(v) for k, v in element.attrib.items()})
        if element.text:
            element.text = printable(element.text)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
