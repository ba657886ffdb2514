"""Small BPMN documents for engine tests, written the way modelers write them."""

from __future__ import annotations

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="Defs" targetNamespace="http://dieuphoi.local/test">\n'
)


def approval(process_id: str = "duyet", *, staff_lane: str = "Chuyên viên", boss_lane: str = "Lãnh đạo",
             form: str | None = None, boundary: str | None = None, extra: str = "") -> bytes:
    """Start -> submit (staff lane) -> approve (supervisor lane) -> end, optional boundary timer on approve."""
    form_ext = (
        '<bpmn:extensionElements><spiffworkflow:properties>'
        f'<spiffworkflow:property name="formJsonSchemaFilename" value="{form}"/>'
        '</spiffworkflow:properties></bpmn:extensionElements>' if form else ""
    )
    timer = ""
    if boundary:
        timer = (
            '<bpmn:boundaryEvent id="het_han" attachedToRef="approve" cancelActivity="true">'
            f'<bpmn:timerEventDefinition><bpmn:timeDuration>{boundary}</bpmn:timeDuration></bpmn:timerEventDefinition>'
            '</bpmn:boundaryEvent>'
            '<bpmn:sequenceFlow id="f_t" sourceRef="het_han" targetRef="qua_han"/>'
            '<bpmn:endEvent id="qua_han"/>'
        )
    return (
        HEAD
        + f'<bpmn:process id="{process_id}" isExecutable="true">'
        '<bpmn:laneSet id="ls">'
        f'<bpmn:lane id="l1" name="{staff_lane}"><bpmn:flowNodeRef>start</bpmn:flowNodeRef>'
        '<bpmn:flowNodeRef>submit</bpmn:flowNodeRef></bpmn:lane>'
        f'<bpmn:lane id="l2" name="{boss_lane}"><bpmn:flowNodeRef>approve</bpmn:flowNodeRef></bpmn:lane>'
        '</bpmn:laneSet>'
        '<bpmn:startEvent id="start"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="submit"/>'
        f'<bpmn:userTask id="submit" name="Trình">{form_ext}</bpmn:userTask>'
        '<bpmn:sequenceFlow id="f2" sourceRef="submit" targetRef="approve"/>'
        '<bpmn:userTask id="approve" name="Phê duyệt"/>'
        '<bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="end"/>'
        f'<bpmn:endEvent id="end"/>{timer}{extra}'
        '</bpmn:process></bpmn:definitions>'
    ).encode()


def call_activity(target: str) -> bytes:
    return (
        HEAD + '<bpmn:process id="cha" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="goi"/>'
        f'<bpmn:callActivity id="goi" calledElement="{target}"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="goi" targetRef="e"/><bpmn:endEvent id="e"/>'
        '</bpmn:process></bpmn:definitions>'
    ).encode()


def message_wait(process_id: str = "cho_tin") -> bytes:
    """A user task, then a wait for message `ket_qua` correlated on `ma_ho_so`."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="D" targetNamespace="t">'
        '<bpmn:collaboration id="c"><bpmn:correlationKey name="khoa_ho_so">'
        '<bpmn:correlationPropertyRef>ma_ho_so</bpmn:correlationPropertyRef></bpmn:correlationKey></bpmn:collaboration>'
        '<bpmn:message id="msg_kq" name="ket_qua"/>'
        '<bpmn:correlationProperty id="ma_ho_so" name="ma_ho_so">'
        '<bpmn:correlationPropertyRetrievalExpression messageRef="msg_kq">'
        '<bpmn:formalExpression>ma_ho_so</bpmn:formalExpression>'
        '</bpmn:correlationPropertyRetrievalExpression></bpmn:correlationProperty>'
        f'<bpmn:process id="{process_id}" isExecutable="true">'
        '<bpmn:laneSet id="ls"><bpmn:lane id="l1" name="Chuyên viên"><bpmn:flowNodeRef>nhap</bpmn:flowNodeRef>'
        '<bpmn:flowNodeRef>xu_ly</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>'
        '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="nhap"/>'
        '<bpmn:userTask id="nhap" name="Nhập hồ sơ"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="nhap" targetRef="cho"/>'
        '<bpmn:intermediateCatchEvent id="cho"><bpmn:messageEventDefinition id="med" messageRef="msg_kq">'
        '<bpmn:extensionElements><spiffworkflow:messageVariable>ket_qua</spiffworkflow:messageVariable>'
        '<spiffworkflow:processVariableCorrelation><spiffworkflow:propertyId>ma_ho_so</spiffworkflow:propertyId>'
        '<spiffworkflow:expression>ma_ho_so</spiffworkflow:expression></spiffworkflow:processVariableCorrelation>'
        '</bpmn:extensionElements></bpmn:messageEventDefinition></bpmn:intermediateCatchEvent>'
        '<bpmn:sequenceFlow id="f3" sourceRef="cho" targetRef="xu_ly"/>'
        '<bpmn:userTask id="xu_ly" name="Xử lý kết quả"/>'
        '<bpmn:sequenceFlow id="f4" sourceRef="xu_ly" targetRef="e"/><bpmn:endEvent id="e"/>'
        '</bpmn:process></bpmn:definitions>'
    ).encode()


SIGNAL = '<bpmn:signal id="sig_dc" name="ke_hoach_dieu_chinh"/>'
SIGNAL_DEF = '<bpmn:signalEventDefinition id="{id}" signalRef="sig_dc"/>'
STAFF_LANE = '<bpmn:laneSet id="ls"><bpmn:lane id="l1" name="Chuyên viên">{refs}</bpmn:lane></bpmn:laneSet>'


def signal_wait(process_id: str = "cho_dc") -> bytes:
    """start -> wait for signal `ke_hoach_dieu_chinh` -> 'Rà soát lại' (staff) -> end."""
    return (
        HEAD + SIGNAL + f'<bpmn:process id="{process_id}" isExecutable="true">'
        + STAFF_LANE.format(refs="<bpmn:flowNodeRef>ra_soat</bpmn:flowNodeRef>")
        + '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="cho"/>'
        '<bpmn:intermediateCatchEvent id="cho">' + SIGNAL_DEF.format(id="c1") + '</bpmn:intermediateCatchEvent>'
        '<bpmn:sequenceFlow id="f2" sourceRef="cho" targetRef="ra_soat"/>'
        '<bpmn:userTask id="ra_soat" name="Rà soát lại"/>'
        '<bpmn:sequenceFlow id="f3" sourceRef="ra_soat" targetRef="e"/><bpmn:endEvent id="e"/>'
        '</bpmn:process></bpmn:definitions>'
    ).encode()


def signal_button(process_id: str = "nut") -> bytes:
    """'Soạn' (staff) with an interrupting signal boundary labelled 'Sửa lại' that leads to 'Sửa'."""
    return (
        HEAD + SIGNAL + f'<bpmn:process id="{process_id}" isExecutable="true">'
        + STAFF_LANE.format(refs="<bpmn:flowNodeRef>soan</bpmn:flowNodeRef><bpmn:flowNodeRef>sua</bpmn:flowNodeRef>")
        + '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="soan"/>'
        '<bpmn:userTask id="soan" name="Soạn"/>'
        '<bpmn:boundaryEvent id="b" attachedToRef="soan"><bpmn:extensionElements>'
        '<spiffworkflow:signalButtonLabel>Sửa lại</spiffworkflow:signalButtonLabel></bpmn:extensionElements>'
        + SIGNAL_DEF.format(id="c3") + '</bpmn:boundaryEvent>'
        '<bpmn:sequenceFlow id="f2" sourceRef="b" targetRef="sua"/><bpmn:userTask id="sua" name="Sửa"/>'
        '<bpmn:sequenceFlow id="f3" sourceRef="sua" targetRef="e2"/><bpmn:endEvent id="e2"/>'
        '<bpmn:sequenceFlow id="f4" sourceRef="soan" targetRef="e"/><bpmn:endEvent id="e"/>'
        '</bpmn:process></bpmn:definitions>'
    ).encode()


CAMUNDA = '''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="D" targetNamespace="t">
  <bpmn:process id="nghi_phep" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l1" name="Chuyên viên"><bpmn:flowNodeRef>dien</bpmn:flowNodeRef></bpmn:lane>
      <bpmn:lane id="l2" name="Lãnh đạo"><bpmn:flowNodeRef>duyet</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="dien"/>
    <bpmn:userTask id="dien" name="Điền đơn" camunda:formKey="don">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="so_ngay" label="Số ngày" type="long"><camunda:validation><camunda:constraint name="required"/></camunda:validation></camunda:formField>
        <camunda:formField id="ly_do" label="Lý do" type="string"/>
      </camunda:formData></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="dien" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="f_short"/>
    <bpmn:sequenceFlow id="f_long" sourceRef="gw" targetRef="duyet"><bpmn:conditionExpression>${so_ngay &gt; 3}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_short" sourceRef="gw" targetRef="e"/>
    <bpmn:userTask id="duyet" name="Duyệt"/>
    <bpmn:sequenceFlow id="f3" sourceRef="duyet" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>'''.encode()


def periodic(process_id: str = "bao_cao", cycle: str = "R3/P1D") -> bytes:
    """A timer start (a bare ISO cycle, as modelers write it), then one report task for Sở KH&CN."""
    return (
        HEAD + f'<bpmn:process id="{process_id}" isExecutable="true">'
        '<bpmn:laneSet id="ls"><bpmn:lane id="l1" name="Sở Khoa học và Công nghệ">'
        '<bpmn:flowNodeRef>bao_cao</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>'
        f'<bpmn:startEvent id="dinh_ky"><bpmn:timerEventDefinition><bpmn:timeCycle>{cycle}</bpmn:timeCycle>'
        '</bpmn:timerEventDefinition></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="f1" sourceRef="dinh_ky" targetRef="bao_cao"/>'
        '<bpmn:userTask id="bao_cao" name="Lập báo cáo định kỳ"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="bao_cao" targetRef="e"/><bpmn:endEvent id="e"/>'
        '</bpmn:process></bpmn:definitions>'
    ).encode()
